"""The harness's side of the trust boundary: worker handles and ``run_tasks``.

A task is a harness function ``fn(worker, payload)`` that drives one confined worker
(:class:`Worker`): it loads a candidate there and asks for placements, one window at a
time, validating and scoring what comes back here. Candidate code only ever runs in the
worker; what crosses is JSON and plain arrays (:mod:`harness.sandbox.wire`): the
window goes in through shared memory, the three output arrays come back the same way,
and the harness copies them out before reading them. Calls are timed with the harness's
own clock, from the moment it starts writing the input to the moment the worker says
``done`` (by then the output must be in place: a worker that says ``done`` early hands
back whatever the region held).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import select
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import numpy as np
import torch

from harness.candidate import CONTEXT_KEYWORDS
from harness.sandbox import wire
from harness.sandbox.outcome import (
    CRASH,
    EXIT,
    FAILURE_KINDS,
    INVALID,
    MEMORY,
    OUTPUT,
    TIMEOUT,
    Limits,
    Outcome,
    TaskFailure,
    one_line,
)
from harness.sandbox.zygote_handle import SandboxError, use_namespaces, use_user_namespace, zygote

INPUT_BYTES = 64 << 20  # the window, the previous placement and the load history
OUTPUT_BYTES = 192 << 20  # the three outputs
_ALIGN = 64
DEFAULT_LIMITS = Limits()


def _wait_status_outcome(status: int) -> tuple[str, str]:
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status))
        if sig == signal.SIGXFSZ:
            return OUTPUT, "printed more than the output limit allows"
        if sig == signal.SIGKILL:
            return MEMORY, "killed by SIGKILL (out of memory?)"
        return CRASH, f"killed by {sig.name}"
    return EXIT, f"exited with code {os.WEXITSTATUS(status)} before returning a result"


class Worker:
    """A handle on one confined worker process, for one task.

    Every wait is bounded by the task's deadline (``limits.timeout_s`` from creation);
    past it the worker's whole PID namespace is killed and :class:`TaskFailure` of kind
    ``timeout`` raised. Any other end of the worker raises :class:`TaskFailure` with the
    kind its exit says.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS):
        z = zygote()  # its first start (about 2 s) is not the task's time
        self.limits = limits
        self.started = time.monotonic()
        self.deadline = self.started + limits.timeout_s
        self.pid: int | None = None
        self.pidfd: int | None = None
        self.status: int | None = None
        self.killed = self.closed = False
        self.context: set[str] = set()  # the context keywords the loaded policy takes
        self.folder = z.task_folder()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        shm_fd = os.memfd_create("eplb-io", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(shm_fd, INPUT_BYTES + OUTPUT_BYTES)
        # The worker can neither shrink the region under the harness's mapping nor grow it.
        fcntl.fcntl(shm_fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
        status_r, status_w = os.pipe()
        self.sock, self.status_fd = ours, status_r
        self.shm = mmap.mmap(shm_fd, INPUT_BYTES + OUTPUT_BYTES)
        spec = {"shm_bytes": INPUT_BYTES + OUTPUT_BYTES, "input_bytes": INPUT_BYTES, "workdir": self.folder,
                "memory_mb": limits.memory_mb, "output_mb": limits.output_mb, "namespaces": use_namespaces(),
                "user_namespace": use_user_namespace()}
        try:
            z.spawn(spec, [theirs.fileno(), shm_fd, status_w])
        finally:
            theirs.close()
            os.close(shm_fd)
            os.close(status_w)
        self._status_buffer, self._status_eof = b"", False
        try:
            self._read_pid()
            hello = self._reply("hello")
        except TaskFailure as exc:
            self.close()
            if exc.kind == TIMEOUT:
                raise
            raise SandboxError(f"a sandbox worker did not start: {exc}") from None
        except BaseException:
            self.close()
            raise
        self.layers: list[str] = hello.get("layers", [])

    # -- status pipe --------------------------------------------------------------
    def _status_lines(self, timeout: float) -> list[str]:
        """Complete lines the keeper has written, waiting up to ``timeout`` for more."""
        if not self._status_eof:
            ready, _, _ = select.select([self.status_fd], [], [], max(0.0, timeout))
            if ready:
                chunk = os.read(self.status_fd, 4096)
                self._status_buffer += chunk
                self._status_eof = not chunk
        *lines, self._status_buffer = self._status_buffer.split(b"\n")
        return [line.decode() for line in lines if line]

    def _read_pid(self) -> None:
        while self.pid is None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TaskFailure(TIMEOUT, f"no worker within {self.limits.timeout_s:g} s")
            if self._status_eof:
                raise SandboxError("a sandbox keeper exited before starting its worker")
            for line in self._status_lines(remaining):
                key, _, value = line.partition(" ")
                if key == "pid":
                    self.pid = int(value)
                    try:
                        self.pidfd = os.pidfd_open(self.pid)
                    except OSError:
                        self.pidfd = None
                elif key == "status":
                    self.status = int(value)

    def _wait_status(self, timeout: float) -> int | None:
        end = time.monotonic() + timeout
        while self.status is None and time.monotonic() < end and not self._status_eof:
            for line in self._status_lines(end - time.monotonic()):
                if line.startswith("status "):
                    self.status = int(line.split()[1])
        return self.status

    # -- the protocol ---------------------------------------------------------------
    def kill(self) -> None:
        """Kill the worker and, with it, everything in its PID namespace."""
        if self.status is None and not self.killed:
            self.killed = True
            try:
                if self.pidfd is not None:
                    signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
                elif self.pid is not None:
                    os.kill(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, OSError):
                pass

    def _failure_from_exit(self) -> TaskFailure:
        status = self._wait_status(5.0)
        if status is None:
            self.kill()
            return TaskFailure(CRASH, "closed its connection without exiting")
        return TaskFailure(*_wait_status_outcome(status))

    def _reply(self, expected: str) -> dict:
        try:
            header = wire.recv_header(self.sock, self.deadline)
        except wire.Deadline:
            self.kill()
            raise TaskFailure(TIMEOUT, f"no result within {self.limits.timeout_s:g} s") from None
        except wire.PeerClosed:
            raise self._failure_from_exit() from None
        except wire.ProtocolError as exc:
            self.kill()
            raise TaskFailure(INVALID, f"broke the worker protocol: {exc}") from None
        op = header.get("op")
        if op == "failed":
            kind = header.get("kind") if header.get("kind") in FAILURE_KINDS else INVALID
            raise TaskFailure(kind, one_line(header.get("reason", "")))
        if op != expected:
            self.kill()
            raise TaskFailure(INVALID, f"broke the worker protocol: answered {one_line(op, 40)!r}, not {expected!r}")
        return header

    def _send(self, header: dict) -> None:
        try:
            self.sock.settimeout(max(0.001, self.deadline - time.monotonic()))
            wire.send(self.sock, header)
        except TimeoutError:
            self.kill()
            raise TaskFailure(TIMEOUT, f"no result within {self.limits.timeout_s:g} s") from None
        except OSError:
            raise self._failure_from_exit() from None

    def load(self, name: str, source: str, path: str | None = None) -> None:
        """Execute a candidate's source in the worker (raises :class:`TaskFailure` ``contract``)."""
        self._send({"op": "load", "name": name, "source": source, "path": path})
        # Which context keywords the policy takes: only those are sent. The worker's word is
        # untrusted, but all it decides is whether this policy is shown what it may see anyway.
        context = self._reply("loaded").get("context")
        self.context = {k for k in context if k in CONTEXT_KEYWORDS} if isinstance(context, list) else set()

    def _write_input(self, array: np.ndarray | None, offset: int) -> tuple[dict | None, int]:
        if array is None:
            return None, offset
        array = np.ascontiguousarray(array)
        if array.dtype.str not in wire.DTYPES or offset + array.nbytes > INPUT_BYTES:
            raise ValueError(f"input of dtype {array.dtype} and {array.nbytes} bytes cannot be sent")
        self.shm[offset : offset + array.nbytes] = array.view(np.uint8).ravel()
        return {**wire.describe(array), "offset": offset}, offset + -(-array.nbytes // _ALIGN) * _ALIGN

    def _read_outputs(self, entries: object) -> tuple[np.ndarray, ...]:
        if not isinstance(entries, list) or len(entries) != 3:
            raise TaskFailure(INVALID, "rebalance_experts must return (phy2log, log2phy, logcnt)")
        arrays = []
        for entry in entries:
            try:
                dtype, shape, nbytes = wire.checked_layout(entry, OUTPUT_BYTES)
                offset = entry.get("offset")
                if type(offset) is not int or not INPUT_BYTES <= offset <= INPUT_BYTES + OUTPUT_BYTES - nbytes:
                    raise wire.ProtocolError("output outside the output region")
            except wire.ProtocolError as exc:
                raise TaskFailure(INVALID, f"broke the worker protocol: {exc}") from None
            # A copy this side owns: the worker can rewrite the region at any time.
            arrays.append(np.frombuffer(self.shm, dtype=dtype, count=nbytes // dtype.itemsize,
                                        offset=offset).reshape(shape).copy())
        return tuple(arrays)

    def call(self, weight: np.ndarray, args: tuple[int, ...], previous: np.ndarray | None = None,
             history: np.ndarray | None = None) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], float]:
        """``((phy2log, log2phy, logcnt), seconds)`` for one window ``weight [L, E]``.

        ``previous`` is ``previous_phy2log [L, P]`` or None, ``history`` ``load_history
        [k, L, E]`` or None; each is sent only when the policy takes it. The arrays are
        unvalidated copies; the seconds run from writing the input to the worker's ``done``.
        """
        previous = previous if "previous_phy2log" in self.context else None
        history = history if "load_history" in self.context else None
        start = time.perf_counter()
        entries, offset = [], 0
        for array in (weight, previous, history):
            entry, offset = self._write_input(array, offset)
            entries.append(entry)
        self._send({"op": "call", "args": [int(a) for a in args], "inputs": entries})
        header = self._reply("done")
        seconds = time.perf_counter() - start
        return self._read_outputs(header.get("outputs")), seconds

    def timed_rebalance(self, weight: torch.Tensor, num_replicas: int, num_groups: int, num_nodes: int,
                        num_gpus: int, previous_phy2log: torch.Tensor | None = None,
                        load_history: torch.Tensor | None = None,
                        ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], float]:
        """The loaded policy as a function of tensors: ``((phy2log, log2phy, logcnt), seconds)``."""
        previous, history = (None if t is None else t.numpy() for t in (previous_phy2log, load_history))
        arrays, seconds = self.call(weight.numpy(), (num_replicas, num_groups, num_nodes, num_gpus), previous,
                                    history)
        return tuple(torch.from_numpy(a) for a in arrays), seconds

    def rebalance(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The loaded policy: ``rebalance_experts(weight, *shape, previous_phy2log=None, load_history=None)``."""
        return self.timed_rebalance(*args, **kwargs)[0]

    def close(self) -> None:
        """End the task: the worker is killed, and with it anything it left running."""
        if self.closed:
            return
        self.closed = True
        self.kill()  # not waited for: the kernel ends the namespace; the keeper reports to no one
        self.sock.close()
        self.shm.close()
        os.close(self.status_fd)
        if self.pidfd is not None:
            os.close(self.pidfd)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _LiveWorkers:
    """The workers of a run in progress, so that stopping the run kills them all at once."""

    def __init__(self) -> None:
        self._workers: set[Worker] = set()
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def add(self, worker: Worker) -> None:
        with self._lock:
            self._workers.add(worker)

    def discard(self, worker: Worker) -> None:
        with self._lock:
            self._workers.discard(worker)

    def stop(self) -> None:
        self.stopping.set()
        with self._lock:
            for worker in self._workers:
                worker.kill()


def run_task(fn: Callable[[Worker, Any], Any], payload: Any, limits: Limits = DEFAULT_LIMITS,
             live: _LiveWorkers | None = None) -> Outcome:
    """``fn(worker, payload)`` with a fresh worker that ends with it, as an :class:`Outcome`.

    ``fn`` runs here and drives the worker; it raises :class:`TaskFailure` (the worker's
    handle does) to report a failure. Any other exception is the harness's and propagates.
    """
    started = time.monotonic()
    worker = None
    try:
        if live is not None and live.stopping.is_set():
            raise TaskFailure(TIMEOUT, "the run was stopped")
        worker = Worker(limits)
        if live is not None:
            live.add(worker)
        value = fn(worker, payload)
        return Outcome(value=value, elapsed_s=time.monotonic() - started)
    except TaskFailure as exc:
        return Outcome(failure_kind=exc.kind, reason=one_line(str(exc)), elapsed_s=time.monotonic() - started)
    finally:
        if worker is not None:
            worker.close()
            if live is not None:
                live.discard(worker)


def run_tasks(
    fn: Callable[[Worker, Any], Any],
    payloads: Iterable[Any],
    limits: Limits = DEFAULT_LIMITS,
    jobs: int = 1,
) -> Iterator[tuple[int, Outcome]]:
    """:func:`run_task` for each payload, ``jobs`` at a time, each with its own fresh worker.

    Yields:
        ``(index, outcome)`` in completion order, ``index`` being the payload's position.
    """
    payloads = list(payloads)
    live = _LiveWorkers()
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="eplb-task")
    futures = {pool.submit(run_task, fn, p, limits, live): i for i, p in enumerate(payloads)}
    try:
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        live.stopping.set()
        for future in futures:
            future.cancel()
        live.stop()
        pool.shutdown(wait=True)
