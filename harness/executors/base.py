"""The executor interface: how the runner has contained tasks run, here or on a cluster.

A task is a harness function ``fn(worker, payload)`` driving one sandboxed worker
(:func:`harness.sandbox.run_task`). An executor runs tasks and hands back their
:class:`~harness.sandbox.Outcome` s, plain data; the caller alone writes the store. Two
kinds of work:

- :meth:`Executor.map`: independent tasks (scoring, loading, replays), as many at once as
  the executor has room for, yielded in completion order;
- :meth:`Executor.map_groups`: groups run one after another, the tasks of a group in turn
  on one machine with nothing else of the run beside them (timing: a case's baseline and
  candidates are timed under the same conditions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from evaluator.registry import Registry
from harness.sandbox import Limits, Outcome

# Executors by kind; ``open_executor`` picks one from a ``--cluster`` address (or none).
EXECUTORS: Registry = Registry("executor")

Task = Callable[[Any, Any], Any]


class ClusterError(Exception):
    """The cluster cannot run the work (unreachable, lost, mismatched): one line saying what and where."""


class Executor(Protocol):
    def map(self, fn: Task, payloads: list, limits: Limits, jobs: int) -> Iterator[tuple[int, Outcome]]:
        """``(index, outcome)`` of every payload, in completion order (``jobs``: the local pool's width)."""

    def map_groups(self, fn: Task, groups: list[list], limits: Limits) -> Iterator[tuple[int, list[Outcome]]]:
        """``(group index, outcomes in payload order)``, groups one at a time, each on one machine."""

    def close(self) -> None: ...


@contextmanager
def open_executor(cluster: str | None) -> Iterator[Executor]:
    """The local pool, or the Dask cluster whose scheduler is at ``cluster`` (``tcp://HOST:PORT``)."""
    executor = EXECUTORS.create("local" if cluster is None else "dask",
                                {} if cluster is None else {"address": cluster})
    try:
        yield executor
    finally:
        executor.close()


def check_address(text: str) -> str:
    """``text`` if it is a scheduler address ``tcp://HOST:PORT`` (or ``tls://``), else ValueError saying so."""
    scheme, _, rest = text.partition("://")
    host, _, port = rest.rpartition(":")
    if scheme not in ("tcp", "tls") or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not a Dask scheduler address (tcp://HOST:PORT)")
    return text
