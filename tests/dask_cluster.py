"""A real Dask cluster on 127.0.0.1 for tests: ``dask scheduler`` and ``dask worker`` processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DASK = str(Path(sys.executable).with_name("dask"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """One scheduler and its workers, each its own process (PIDs in ``worker_pids``)."""

    def __init__(self, workers: int, threads: int = 1):
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.folder = Path(tempfile.mkdtemp(prefix="eplb-dask-"))
        self.threads = threads
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.start_scheduler()
        for _ in range(workers):
            self.add_worker()
        self.wait_for_workers(workers)

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 (the process holds it)
        # The tests folder on the path: a test may send a task function of its own.
        path = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
        env = os.environ | {"PYTHONPATH": path}
        return subprocess.Popen([DASK, *args], stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                start_new_session=True)

    def start_scheduler(self) -> None:
        self.scheduler = self._spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                     "--no-dashboard", "--no-show")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the dask scheduler did not start; log: {self.folder / 'scheduler.log'}")

    def add_worker(self) -> subprocess.Popen:
        # No nanny: the PID is the worker itself, and a killed worker stays dead.
        worker = self._spawn(f"worker{len(self.workers)}", "worker", self.address, "--nthreads", str(self.threads),
                             "--no-nanny", "--no-dashboard", "--memory-limit", "0", "--host", "127.0.0.1")
        self.workers.append(worker)
        return worker

    @property
    def worker_pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.poll() is None]

    def wait_for_workers(self, n: int) -> None:
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=60)

    def kill_scheduler(self) -> None:
        os.kill(self.scheduler.pid, signal.SIGKILL)
        self.scheduler.wait()

    def close(self) -> None:
        for proc in [self.scheduler, *self.workers]:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


@contextmanager
def dask_cluster(workers: int = 2, threads: int = 1) -> Iterator[LocalCluster]:
    cluster = LocalCluster(workers, threads)
    try:
        yield cluster
    finally:
        cluster.close()
