"""Wall time of one ``evaluate`` on the local pool against a Dask cluster of 1 and 2 workers.

Each setting evaluates the same candidates on the same suite into a fresh store (scoring
and timing), so the figures are the whole command: the cluster settings start a
``distributed.LocalCluster`` of worker processes on this machine (one thread each) and pass
its address as ``--cluster``; the local settings use ``--jobs``. The scored figures of every
setting are checked equal to the first's.

    .venv/bin/python benchmarks/cluster_walltime.py --suite default
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

from distributed import LocalCluster

from harness.cli import main as cli
from harness.store import Store

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = [str(ROOT / "candidates" / name) for name in ("rounds_swap.py", "vectorized_greedy.py")]


def run(suite: str, folder: Path, name: str, extra: list[str]) -> tuple[float, object]:
    db = f"sqlite:///{folder}/{name}.db"
    argv = ["evaluate", *CANDIDATES, "--suite", suite, "--time-per-preset", "--repeats", "3", "--quiet",
            "--db", db, "--out", str(folder / name), *extra]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        if cli(argv) != 0:
            raise SystemExit(f"{name}: evaluate failed")
    seconds = time.perf_counter() - start
    frame = Store(db).evaluations_frame().sort_values(["candidate_id", "case_key"])
    return seconds, frame[["candidate_id", "case_key", "gpu_balancedness", "oracle_gpu_balancedness"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", default="default", help="suite to evaluate (default: default)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="eplb-cluster-bench-"))
    rows, reference = [], None
    settings = [("local pool, --jobs 1", ["--jobs", "1"], None), ("local pool, --jobs 2", ["--jobs", "2"], None),
                ("Dask, 1 worker", [], 1), ("Dask, 2 workers", [], 2)]
    for label, extra, workers in settings:
        name = label.split(",")[0].replace(" ", "-") + (f"-{workers}" if workers else extra[-1])
        if workers is None:
            seconds, frame = run(args.suite, folder, name, extra)
        else:
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                              host="127.0.0.1") as cluster:
                seconds, frame = run(args.suite, folder, name, ["--cluster", cluster.scheduler_address])
        if reference is None:
            reference = frame.reset_index(drop=True)
        elif not frame.reset_index(drop=True).equals(reference):
            raise SystemExit(f"{label}: scored figures differ from the first setting's")
        rows.append((label, seconds))
        print(f"{label:24s} {seconds:7.1f} s", flush=True)
    print(f"\nsuite {args.suite!r}, candidates {', '.join(Path(c).stem for c in CANDIDATES)} and the baseline; "
          f"scored figures equal in all settings")


if __name__ == "__main__":
    main()
