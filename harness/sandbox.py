"""Run untrusted candidate code in forked worker processes with limits.

Each task runs in its own forked process (fork costs ~10 ms here; the parent has
already imported torch, so workers start warm). A worker

* is its own process group, so anything it spawns dies with it;
* has an address-space limit of the parent's size plus ``memory_mb``;
* writes stdout/stderr to a log file capped at ``output_mb`` (SIGXFSZ past it);
* uses one torch thread, so parallel workers do not fight over cores;
* seeds ``random``, numpy and torch, so randomised candidates score the same every run;
* is killed when it passes its wall-time limit.

Whatever happens, the parent gets an :class:`Outcome` with a failure kind and a
one-line reason, and carries on.
"""

from __future__ import annotations

import errno
import faulthandler
import multiprocessing as mp
import os
import resource
import signal
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

# Failure kinds, as stored and shown.
CONTRACT = "contract"  # import failed, missing function, wrong signature
ERROR = "error"  # raised an exception
INVALID = "invalid"  # returned something that is not a placement
EXIT = "exit"  # sys.exit / os._exit
CRASH = "crash"  # killed by a signal (segfault, abort, ...)
TIMEOUT = "timeout"  # passed the wall-time limit
MEMORY = "memory"  # passed the memory limit
OUTPUT = "output"  # printed past the output limit
FAILURE_KINDS = (CONTRACT, ERROR, INVALID, EXIT, CRASH, TIMEOUT, MEMORY, OUTPUT)


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 120.0
    memory_mb: int = 4096
    output_mb: int = 8


@dataclass(frozen=True)
class Outcome:
    """What one task produced: ``value`` when ``ok``, else a failure kind and a reason."""

    value: Any = None
    failure_kind: str | None = None
    reason: str | None = None
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure_kind is None


class TaskFailure(Exception):
    """Raised by task code to report a failure of a given kind."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe_exception(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, TaskFailure):
        return exc.kind, _one_line(str(exc))
    if isinstance(exc, SystemExit):
        return EXIT, f"called sys.exit({exc.code!r})"
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:  # Python ignores SIGXFSZ
        return OUTPUT, "printed more than the output limit allows"
    if isinstance(exc, MemoryError) or "can't allocate memory" in str(exc) or "out of memory" in str(exc).lower():
        return MEMORY, _one_line(f"{exc.__class__.__name__}: {exc}")
    # Name where in the candidate it happened: the innermost frame.
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return ERROR, _one_line(f"{exc.__class__.__name__}: {exc}{where}")


def _limit_self(limits: Limits, log_path: str) -> None:
    os.setpgrp()
    faulthandler.disable()  # a crash is reported by its signal, not dumped on the parent's stderr
    with open("/proc/self/status") as f:
        vm_kb = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
    address_space = (vm_kb * 1024) + limits.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    out_bytes = limits.output_mb * 2**20
    resource.setrlimit(resource.RLIMIT_FSIZE, (out_bytes, out_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    import random

    import numpy as np
    import torch

    torch.set_num_threads(1)
    # Candidates that draw random numbers get the same ones in every worker and run.
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def _child(conn: Connection, fn: Callable[[Any], Any], payload: Any, limits: Limits, log_path: str) -> None:
    try:
        _limit_self(limits, log_path)
        message = ("ok", fn(payload))
    except BaseException as exc:  # noqa: BLE001 - everything a candidate does is reported
        message = ("failed", *_describe_exception(exc))
    try:
        conn.send(message)
    except BaseException as exc:  # noqa: BLE001 - e.g. an unpicklable value
        try:
            conn.send(("failed", ERROR, _one_line(f"result could not be sent back: {exc}")))
        except BaseException:  # noqa: BLE001
            pass
    finally:
        # Skip interpreter teardown: it would run the parent's finalizers in this copy.
        os._exit(0)


def _signal_outcome(exitcode: int) -> tuple[str, str]:
    if exitcode < 0:
        sig = signal.Signals(-exitcode)
        if sig == signal.SIGXFSZ:
            return OUTPUT, "printed more than the output limit allows"
        if sig == signal.SIGKILL:
            return MEMORY, "killed by SIGKILL (out of memory?)"
        return CRASH, f"killed by {sig.name}"
    return EXIT, f"exited with code {exitcode} before returning a result"


@dataclass
class _Running:
    index: int
    process: mp.process.BaseProcess
    conn: Connection
    deadline: float
    started: float
    log_path: str


def run_tasks(
    fn: Callable[[Any], Any],
    payloads: Iterable[Any],
    limits: Limits = Limits(),
    jobs: int = 1,
) -> Iterator[tuple[int, Outcome]]:
    """Run ``fn(payload)`` for each payload, each in its own limited worker.

    ``fn`` must be importable module-level code that returns picklable values;
    it may raise :class:`TaskFailure` to report a failure of a given kind.

    Yields:
        ``(index, outcome)`` in completion order, ``index`` being the payload's position.
    """
    ctx = mp.get_context("fork")
    pending = list(enumerate(payloads))
    pending.reverse()
    running: list[_Running] = []
    log_dir = tempfile.mkdtemp(prefix="eplb-sandbox-")
    try:
        while pending or running:
            while pending and len(running) < max(1, jobs):
                index, payload = pending.pop()
                recv_conn, send_conn = ctx.Pipe(duplex=False)
                log_path = os.path.join(log_dir, f"task-{index}.log")
                proc = ctx.Process(target=_child, args=(send_conn, fn, payload, limits, log_path), daemon=True)
                now = time.monotonic()
                proc.start()
                send_conn.close()
                running.append(_Running(index, proc, recv_conn, now + limits.timeout_s, now, log_path))
            nearest = min(r.deadline for r in running)
            ready = wait([r.conn for r in running] + [r.process.sentinel for r in running],
                         timeout=max(0.0, nearest - time.monotonic()))
            for r in list(running):
                outcome = _collect(r, ready)
                if outcome is not None:
                    running.remove(r)
                    yield r.index, outcome
    finally:
        for r in running:
            _kill(r)
        for name in os.listdir(log_dir):
            os.unlink(os.path.join(log_dir, name))
        os.rmdir(log_dir)


def _collect(r: _Running, ready: list) -> Outcome | None:
    """The finished outcome of ``r``, or None while it is still running within its limit."""
    elapsed = time.monotonic() - r.started
    if r.conn in ready:
        try:
            message = r.conn.recv()
        except (EOFError, OSError):
            message = None
        if message is not None:
            _kill(r)
            if message[0] == "ok":
                return Outcome(value=message[1], elapsed_s=elapsed)
            return Outcome(failure_kind=message[1], reason=message[2], elapsed_s=elapsed)
    if r.process.sentinel in ready or (r.conn in ready):
        r.process.join(timeout=5)
        if r.process.exitcode is not None:
            r.conn.close()
            kind, reason = _signal_outcome(r.process.exitcode)
            return Outcome(failure_kind=kind, reason=reason, elapsed_s=elapsed)
    if time.monotonic() >= r.deadline:
        _kill(r)
        return Outcome(failure_kind=TIMEOUT, reason=f"no result within {r.deadline - r.started:g} s", elapsed_s=elapsed)
    return None


def _kill(r: _Running) -> None:
    try:
        os.killpg(r.process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # not yet its own group: kill the process alone
    if r.process.is_alive():
        r.process.kill()
    r.process.join(timeout=5)
    r.conn.close()
