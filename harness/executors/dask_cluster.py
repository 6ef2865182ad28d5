"""The workers of a Dask cluster (``--cluster tcp://HOST:PORT``), through ``dask.distributed``.

What travels is what the local pool passes between threads: the task function (by
reference: every worker has the harness installed), its payload (candidate source, case,
seeds) and the :class:`~harness.sandbox.Outcome` that comes back, plain data. Each task
builds its sandboxed worker on the Dask worker's machine, exactly as a local run does, so
candidate code runs nowhere else; validation and scoring run in the Dask worker's harness
code; the store is written by the calling process alone.

Faults: a Dask worker that dies has its tasks re-run on another by the scheduler (each
outcome is handed over once, so nothing is stored twice); a worker running other harness
code than the caller, a task that kills its workers, or the scheduler going away ends the
work with :class:`ClusterError`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness import sandbox
from harness.executors.base import EXECUTORS, ClusterError, Task, check_address


@lru_cache(maxsize=1)
def code_digest() -> str:
    """A hash of the evaluator's and the harness's source: equal on two machines, equal results."""
    import evaluator
    import harness

    digest = hashlib.sha256()
    for package in (evaluator, harness):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{path.relative_to(root.parent)}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class CodeMismatch(Exception):
    """Raised on a Dask worker whose harness code is not the caller's."""


def _check_code(expected: str) -> None:
    if code_digest() != expected:
        from distributed import get_worker

        raise CodeMismatch(f"Dask worker {get_worker().address} runs other harness code (digest {code_digest()}, "
                           f"the caller's {expected}): install the same version on every machine")


def remote_task(fn: Task, payload: Any, limits: sandbox.Limits, expected: str) -> sandbox.Outcome:
    """On a Dask worker: one task, in a sandboxed worker of that machine."""
    _check_code(expected)
    return sandbox.run_task(fn, payload, limits)


def remote_group(fn: Task, payloads: list, limits: sandbox.Limits, expected: str
                 ) -> tuple[str, list[sandbox.Outcome]]:
    """On a Dask worker: a group's tasks in turn; also says which worker ran them."""
    from distributed import get_worker

    _check_code(expected)
    return get_worker().address, [sandbox.run_task(fn, payload, limits) for payload in payloads]


@EXECUTORS.register("dask")
@dataclass
class DaskExecutor:
    """Tasks on the workers of the Dask scheduler at ``address``.

    Independent tasks go to the scheduler all at once and run as wide as the cluster's
    worker threads. Timing groups go one at a time, each as one Dask task, so a case's
    baseline and candidates are timed in turn on one worker with nothing else of the run
    on the cluster; every group is placed on the worker that timed the first one while it
    lives (a group whose worker dies is re-run whole on another).
    """

    address: str
    connect_timeout_s: float = 10.0
    workers_timeout_s: float = 60.0
    _client: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        check_address(self.address)
        from distributed import Client

        # The client logs each failed reconnection with a traceback; the run reports one line instead.
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        try:
            self._client = Client(self.address, timeout=self.connect_timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {self.address}: "
                               f"{sandbox.one_line(exc)}") from None
        try:
            self._client.wait_for_workers(1, timeout=self.workers_timeout_s)
        except (OSError, TimeoutError):
            self.close()
            raise ClusterError(f"no worker joined the Dask scheduler at {self.address} "
                               f"within {self.workers_timeout_s:g} s") from None

    def map(self, fn: Task, payloads: list, limits: sandbox.Limits, jobs: int
            ) -> Iterator[tuple[int, sandbox.Outcome]]:
        from distributed import as_completed

        futures = {self._client.submit(remote_task, fn, payload, limits, code_digest(), pure=False): index
                   for index, payload in enumerate(payloads)}
        done = 0
        try:
            for future in as_completed(futures, loop=self._client.loop):
                outcome = self._result(future, done, len(futures))
                done += 1
                yield futures[future], outcome
        finally:
            self._cancel(list(futures))

    def map_groups(self, fn: Task, groups: list[list], limits: sandbox.Limits
                   ) -> Iterator[tuple[int, list[sandbox.Outcome]]]:
        timer = None
        for index, group in enumerate(groups):
            placed = {"workers": [timer], "allow_other_workers": True} if timer else {}
            future = self._client.submit(remote_group, fn, group, limits, code_digest(), pure=False, **placed)
            try:
                timer, outcomes = self._result(future, index, len(groups))
            finally:
                self._cancel([future])
            yield index, outcomes

    def _result(self, future: Any, done: int, total: int) -> Any:
        from distributed import KilledWorker

        try:
            return future.result()
        except CodeMismatch as exc:
            raise ClusterError(str(exc)) from None
        except KilledWorker:
            raise ClusterError(f"a task killed every Dask worker it ran on ({self.address}); the cluster, not a "
                               "candidate, is at fault: a candidate cannot leave its sandbox") from None
        except Exception as exc:
            if self._client.status != "running" or "cancelled" in type(exc).__name__.lower():
                raise ClusterError(f"lost the Dask scheduler at {self.address} after {done} of {total} tasks; what "
                                   "finished is kept: run the same command again to go on (evolve: with --resume)"
                                   ) from None
            raise ClusterError(f"a task failed on the Dask cluster {self.address}: {type(exc).__name__}: "
                               f"{sandbox.one_line(exc)}") from None

    def _cancel(self, futures: list) -> None:
        try:
            self._client.cancel(futures)
        except Exception:  # the scheduler is gone: nothing left to cancel
            pass

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close(timeout=5)
            except Exception:  # a lost scheduler; the client is closed all the same
                pass
            self._client = None
