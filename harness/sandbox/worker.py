"""The candidate's side of the trust boundary: one confined process serving one task.

The worker is forked (by the keeper, see :mod:`harness.sandbox.zygote`) into its own
namespaces, confines itself (:func:`harness.sandbox.jail.confine`), says ``hello`` with
the layers in force, and then answers, one at a time:

* ``load`` (the candidate's source): executes it and answers ``loaded`` with the context
  keywords its policy takes (so that the harness sends only those);
* ``call`` (the shape arguments; the window ``weight [L, E]`` and optionally
  ``previous_phy2log [L, P]`` and ``load_history [k, L, E]`` in the input region of the
  shared memory): calls the policy and answers ``done`` with the three outputs in the
  output region.

Anything else it answers is ``failed`` with a kind and a one-line reason. Nothing in
this process is trusted: the harness validates every array it reads back, times calls
with its own clock, and only ever reads plain arrays and JSON from here.
"""

from __future__ import annotations

import errno
import mmap
import os
import random
import socket
import traceback

import numpy as np
import torch

from harness.candidate import Candidate, ContractError, load_module, rebalance_function
from harness.sandbox import jail, wire
from harness.sandbox.outcome import CONTRACT, ERROR, EXIT, INVALID, MEMORY, OUTPUT, TaskFailure, one_line

# glibc raises its malloc thresholds to the size of a large block once it is freed, up to 32 MiB.
_ALLOCATOR_WARMUP_BYTES = 16 << 20
_ALIGN = 64


def warm_allocator() -> None:
    """Give the process's C allocator the state a long-running serving process has.

    A fresh process's glibc malloc hands freed memory at the top of its heap back to the
    OS as soon as more than a few hundred KiB are free. A call that allocates and frees
    a few MiB then page-faults all of it in again on every call (in a fresh process,
    600 faults per call for 2.5 MiB, about 1 ms here). A serving engine has long since
    freed large tensors, which raises those thresholds (up to 32 MiB), so the same call
    does not fault there. Freeing one large, never touched block raises them here too.
    Skipped when a tight address-space limit refuses the block.
    """
    try:
        np.empty(_ALLOCATOR_WARMUP_BYTES, dtype=np.uint8)
    except MemoryError:
        pass


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """``(failure kind, one-line reason)`` for an exception raised by candidate code."""
    if isinstance(exc, TaskFailure):
        return exc.kind, one_line(str(exc))
    if isinstance(exc, ContractError):
        return CONTRACT, one_line(str(exc))
    if isinstance(exc, SystemExit):
        return EXIT, one_line(f"called sys.exit({exc.code!r})")
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:  # Python ignores SIGXFSZ
        return OUTPUT, "printed more than the output limit allows"
    if isinstance(exc, MemoryError) or "can't allocate memory" in str(exc) or "out of memory" in str(exc).lower():
        return MEMORY, one_line(f"{exc.__class__.__name__}: {exc}")
    # Name where in the candidate it happened: the innermost frame.
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return ERROR, one_line(f"{exc.__class__.__name__}: {exc}{where}")


def _as_array(name: str, value: object) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool,
                               torch.float64, torch.float32):
            raise TaskFailure(INVALID, f"{name} has dtype {value.dtype}, expected an integer dtype")
        value = value.contiguous().numpy()
    if not isinstance(value, np.ndarray) or value.dtype.newbyteorder("<").str not in wire.DTYPES:
        raise TaskFailure(INVALID, f"{name} is a {type(value).__name__}, not a torch.Tensor")
    return np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))


class _Server:
    def __init__(self, sock: socket.socket, shm: mmap.mmap, input_bytes: int):
        self.sock, self.shm, self.input_bytes = sock, shm, input_bytes
        self.rebalance = None

    def serve(self) -> None:
        while True:
            try:
                header = wire.recv_header(self.sock)
            except wire.ProtocolError:
                return  # the harness closed the connection: the task is over
            try:
                reply = self.handle(header)
            except BaseException as exc:  # noqa: BLE001 - everything candidate code does is reported
                kind, reason = describe_exception(exc)
                reply = {"op": "failed", "kind": kind, "reason": reason}
            wire.send(self.sock, reply)

    def handle(self, header: dict) -> dict:
        op = header.get("op")
        if op == "load":
            candidate = Candidate(name=str(header["name"]), source=str(header["source"]), path=header.get("path"))
            self.rebalance = rebalance_function(load_module(candidate))
            return {"op": "loaded", "context": list(self.rebalance.accepted)}
        if op == "call" and self.rebalance is not None:
            weight, previous, history = (self._input(e) for e in header["inputs"])
            output = self.rebalance(weight, *header["args"], previous_phy2log=previous, load_history=history)
            return {"op": "done", "outputs": self._put(output)}
        raise TaskFailure(INVALID, f"unexpected request {op!r}")

    def _input(self, entry: dict | None) -> torch.Tensor | None:
        if entry is None:
            return None
        dtype, shape, nbytes = wire.checked_layout(entry, self.input_bytes)
        # A fresh buffer each call: the shared region is rewritten by the next call.
        view = np.frombuffer(self.shm, dtype=dtype, count=nbytes // dtype.itemsize, offset=entry["offset"])
        return torch.from_numpy(view.reshape(shape).copy())

    def _put(self, output: object) -> list[dict]:
        if not isinstance(output, tuple | list) or len(output) != 3:
            raise TaskFailure(INVALID, "rebalance_experts must return (phy2log, log2phy, logcnt)")
        entries, offset = [], self.input_bytes
        for name, value in zip(("phy2log", "log2phy", "logcnt"), output, strict=True):
            array = _as_array(name, value)
            if offset + array.nbytes > len(self.shm):
                raise TaskFailure(INVALID, f"{name} ({array.nbytes} bytes) does not fit the output region")
            np.frombuffer(self.shm, dtype=np.uint8, count=array.nbytes, offset=offset)[:] = array.view(np.uint8).ravel()
            entries.append({**wire.describe(array), "offset": offset})
            offset += -(-array.nbytes // _ALIGN) * _ALIGN
        return entries


def main(spec: dict, task_fd: int, shm_fd: int, lifeline_fd: int, namespaces: list[str]) -> None:
    """The worker process, from its fork to its exit. Never returns."""
    code, sock = 0, None
    try:
        os.dup2(task_fd, 3)
        os.dup2(shm_fd, 4)
        os.dup2(lifeline_fd, 5)
        os.closerange(6, 1 << 16)
        jail.die_with_parent(5)
        os.setsid()
        sock = socket.socket(fileno=3)
        shm = mmap.mmap(4, spec["shm_bytes"])
        os.close(4)
        confined = jail.confine(namespaces, spec["workdir"], spec["memory_mb"], spec["output_mb"], lifeline_fd=5)
        os.close(5)
        log_fd = os.open(os.path.join(confined["workdir"], "output.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        os.environ.update(HOME=confined["workdir"], TMPDIR=confined["workdir"])
        torch.set_num_threads(1)
        # Candidates that draw random numbers get the same ones in every worker and run.
        random.seed(0)
        np.random.seed(0)
        torch.manual_seed(0)
        warm_allocator()
        wire.send(sock, {"op": "hello", "layers": confined["layers"]})
        _Server(sock, shm, spec["input_bytes"]).serve()
    except BaseException as exc:  # noqa: BLE001 - before any candidate code: the sandbox's own failure
        code = 70
        try:
            wire.send(sock, {"op": "failed", "kind": ERROR, "reason": one_line(f"sandbox setup: {exc!r}")})
        except BaseException:  # noqa: BLE001
            pass
    finally:
        os._exit(code)  # skip interpreter teardown: it would run the zygote's finalizers
