"""A real PostgreSQL server on 127.0.0.1 for tests, started from the machine's binaries."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


def find_pg_bin() -> str | None:
    """The folder holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))  # Debian keeps them off PATH
    if found:
        return os.path.dirname(found[-1])
    on_path = shutil.which("initdb")
    return os.path.dirname(on_path) if on_path else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL of a fresh, empty database; stop and delete the server after."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL binaries (initdb, pg_ctl) not found; .ci/run installs them")
    data = tempfile.mkdtemp(prefix="eplb-pg-")
    # PostgreSQL refuses to run as root: run it as the postgres user when we are root.
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(data, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, timeout=120, cwd="/")

    run(f"{bin_dir}/initdb", "-D", data, "-A", "trust", "-U", "postgres")
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=50 -c fsync=off"
    run(f"{bin_dir}/pg_ctl", "-D", data, "-o", opts, "-w", "-l", f"{data}/log", "start")
    try:
        run(f"{bin_dir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "eplb")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/eplb"
    finally:
        run(f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(data, ignore_errors=True)
