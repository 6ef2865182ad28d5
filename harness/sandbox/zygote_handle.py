"""The harness's handle on the zygote: the one clean process that forks every sandbox worker.

The zygote (:mod:`harness.sandbox.zygote`) starts from a fresh interpreter with an
environment that holds nothing secret; workers are forked from it, never from the
harness, so no harness memory (keys, the store, the next window) is ever in theirs.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from harness.sandbox.outcome import one_line

# The environment a worker gets: nothing that can hold a key or a token.
ENV_ALLOWED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_ROOT = str(Path(__file__).resolve().parents[2])
_BOOT = """
import sys
sys.path.insert(0, {root!r})
try:
    from harness.sandbox.zygote import main
except BaseException as exc:
    import socket
    socket.socket(fileno=int(sys.argv[1])).sendall(("failed " + repr(exc)).encode())
    raise SystemExit(1)
main(int(sys.argv[1]))
"""
_STALE_PREFIX = "eplb-sandbox-"


class SandboxError(RuntimeError):
    """The sandbox itself could not start (not a candidate's failure)."""


def use_user_namespace() -> bool:
    """Whether workers get a user namespace: when not root, or when ``EPLB_SANDBOX_USERNS=1``
    (to exercise an ordinary user's path as root)."""
    return os.geteuid() != 0 or os.environ.get("EPLB_SANDBOX_USERNS") == "1"


def use_namespaces() -> bool:
    """Whether workers get their own namespaces (always, unless ``EPLB_SANDBOX_NAMESPACES=0``,
    which shows what holds where a kernel refuses them)."""
    return os.environ.get("EPLB_SANDBOX_NAMESPACES") != "0"


def remove_stale_folders(tmp: str | None = None) -> list[str]:
    """Remove the fallback folders of harness processes that no longer run (after a ``kill -9``)."""
    removed = []
    root = Path(tmp or tempfile.gettempdir())
    for folder in root.glob(f"{_STALE_PREFIX}*"):
        try:
            pid = int(folder.name.removeprefix(_STALE_PREFIX).split("-")[0])
            os.kill(pid, 0)
        except ValueError:
            continue
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
        except PermissionError:
            pass  # alive, someone else's
    return removed


class Zygote:
    """The clean process that forks workers (:mod:`harness.sandbox.zygote`)."""

    def __init__(self) -> None:
        remove_stale_folders()
        self.folder = tempfile.mkdtemp(prefix=f"{_STALE_PREFIX}{os.getpid()}-")
        os.chmod(self.folder, 0o711)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {k: os.environ[k] for k in ENV_ALLOWED if k in os.environ}
        env |= {"HOME": "/nonexistent", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOT.format(root=_ROOT), str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
        theirs.close()
        self.sock = ours
        self.lock = threading.Lock()
        self.count = 0
        ours.settimeout(120)
        try:
            greeting = ours.recv(4096)
        except TimeoutError:
            greeting = b"no answer within 120 s"
        if greeting != b"ready\n":
            self.close()
            raise SandboxError(f"the sandbox's zygote did not start: {one_line(greeting.decode(errors='replace'))}")
        ours.settimeout(None)

    def alive(self) -> bool:
        return self.process.poll() is None

    def spawn(self, spec: dict, fds: list[int]) -> None:
        with self.lock:
            self.sock.sendmsg([json.dumps(spec).encode()],
                              [(socket.SOL_SOCKET, socket.SCM_RIGHTS, np.array(fds, dtype=np.int32).tobytes())])

    def task_folder(self) -> str:
        with self.lock:
            self.count += 1
            path = os.path.join(self.folder, f"task-{self.count}")
        os.mkdir(path, 0o700)
        if os.geteuid() == 0 and not use_user_namespace():
            try:  # for a worker that drops to nobody and has no private tmpfs
                os.chown(path, 65534, 65534)
            except PermissionError:  # root without CAP_CHOWN: it will not drop either
                pass
        return path

    def close(self) -> None:
        self.sock.close()  # the zygote exits on EOF; its keepers and workers die with it
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


_zygote: Zygote | None = None
_zygote_lock = threading.Lock()


def zygote() -> Zygote:
    """The process's zygote, started on first use (and again if it died)."""
    global _zygote
    with _zygote_lock:
        if _zygote is None or not _zygote.alive():
            _zygote = Zygote()
            atexit.register(_zygote.close)  # its folder goes with it
        return _zygote
