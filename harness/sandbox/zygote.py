"""The zygote: a clean process that forks one confined worker per task.

The harness starts it once (:class:`harness.sandbox.zygote_handle.Zygote`) from a fresh
interpreter with an allow-listed environment (no keys or tokens) and ``/`` as its
directory: it holds none of the harness's memory (no workload, no later window, no
store), imports torch and the worker code once so that workers start warm, and then
waits on its control socket. Each request carries three descriptors: the task's
socket, its shared memory and a status pipe. For each it forks a keeper, which

1. dies with the zygote (``PR_SET_PDEATHSIG``), and the zygote exits when the harness
   closes the control socket or dies, so nothing outlives the harness;
2. unshares the worker's namespaces (:func:`harness.sandbox.jail.enter_namespaces`)
   and forks the worker (PID 1 of the new PID namespace);
3. writes ``pid N`` (the worker's pid as the harness sees it) and, once the worker is
   gone, ``status S`` (its wait status) to the status pipe, then exits.
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import sys

_MAX_FDS = 3


def recv_request(sock: socket.socket) -> tuple[dict, list[int]] | None:
    """One spawn request (a JSON line and its descriptors), or None once the harness is gone."""
    fds = array.array("i")
    try:
        data, ancdata, _, _ = sock.recvmsg(1 << 16, socket.CMSG_SPACE(_MAX_FDS * fds.itemsize))
    except OSError:
        return None
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    if not data:
        return None
    return json.loads(data), list(fds)


def _keeper(spec: dict, task_fd: int, shm_fd: int, status_fd: int, zygote_pid: int) -> None:
    from harness.sandbox import jail, worker

    try:
        os.dup2(os.open(os.devnull, os.O_RDWR), 2)
        jail.die_with_parent_pid(zygote_pid)
        lifeline_r, lifeline_w = os.pipe()  # the worker's way to know this keeper is alive
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        namespaces = jail.enter_namespaces(spec["user_namespace"]) if spec["namespaces"] else []
        if "pid" not in namespaces:  # no namespace to end what the worker starts: adopt and end it here
            jail.become_subreaper()
        pid = os.fork()
        if pid == 0:
            os.close(status_fd)
            os.close(lifeline_w)
            worker.main(spec, task_fd, shm_fd, lifeline_r, namespaces)
        os.close(lifeline_r)
        os.close(task_fd)
        os.close(shm_fd)
        os.write(status_fd, f"pid {pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        if "pid" not in namespaces:
            jail.kill_descendants()
        os.write(status_fd, f"status {status}\n".encode())
    finally:
        os._exit(0)


def main(control_fd: int) -> None:
    sys.dont_write_bytecode = True
    sock = socket.socket(fileno=control_fd)
    import numpy  # noqa: F401 - imported once here, so every worker starts warm
    import torch

    import harness.sandbox.worker  # noqa: F401

    torch.set_num_threads(1)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # keepers are reaped by the kernel
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the harness's to handle
    sock.sendall(b"ready\n")
    zygote_pid = os.getpid()
    while True:
        request = recv_request(sock)
        if request is None:
            os._exit(0)
        spec, fds = request
        if len(fds) != _MAX_FDS:
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            sock.close()
            _keeper(spec, *fds, zygote_pid=zygote_pid)
        for fd in fds:
            os.close(fd)
