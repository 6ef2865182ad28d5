"""Every command on a real Dask cluster: a scheduler and two workers started on 127.0.0.1."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml
from dask_cluster import dask_cluster

from evaluator.suites import Case
from harness import sandbox
from harness.candidate import baseline, from_source
from harness.cli import main
from harness.executors import ClusterError, DaskExecutor
from harness.executors.dask_cluster import remote_task
from harness.runner import RunConfig, evaluate
from harness.store import Store

ROOT = Path(__file__).resolve().parent.parent
FAST = str(ROOT / "candidates" / "vectorized_greedy.py")
FIGURES = ["gpu_balancedness", "oracle_gpu_balancedness", "node_balancedness", "gap_to_bound"]


@pytest.fixture(scope="module")
def cluster():
    with dask_cluster(workers=2) as running:
        yield running


def evaluations(db: str):
    frame = Store(db).evaluations_frame()
    return frame.set_index(["candidate_id", "case_key"]).sort_index()


def test_a_cluster_run_scores_every_case_as_the_local_pool_does_and_times_every_case(cluster, tmp_path):
    local, remote = f"sqlite:///{tmp_path}/local.db", f"sqlite:///{tmp_path}/remote.db"
    common = ["evaluate", FAST, "--suite", "smoke", "--repeats", "1", "--out", str(tmp_path / "out")]
    assert main([*common, "--db", local, "--jobs", "2", "--no-timing"]) == 0
    assert main([*common, "--db", remote, "--cluster", cluster.address]) == 0
    here, there = evaluations(local), evaluations(remote)
    assert len(here) == 12 and list(here.index) == list(there.index)
    assert here["failure_kind"].isna().all() and there["failure_kind"].isna().all()
    for figure in FIGURES:
        assert here[figure].tolist() == there[figure].tolist(), figure  # equal, not close
    timings = Store(remote).timings_frame()
    assert len(timings) == 12 and timings["timing_failure"].isna().all() and (timings["median_s"] > 0).all()


def process_id(worker, payload):
    """A task that runs no candidate: which Dask worker process ran it."""
    return os.getpid()


def test_a_timing_group_runs_on_one_worker_and_every_group_on_the_same_one(cluster):
    executor = DaskExecutor(cluster.address)
    try:
        groups = list(executor.map_groups(process_id, [[0, 1, 2]] * 4, sandbox.Limits()))
    finally:
        executor.close()
    pids = {pid for _, outcomes in groups for pid in (o.value for o in outcomes)}
    assert [i for i, _ in groups] == [0, 1, 2, 3] and len(pids) == 1 and pids <= set(cluster.worker_pids)


def test_a_worker_running_other_harness_code_ends_the_run_with_one_line(cluster):
    executor = DaskExecutor(cluster.address)
    try:
        future = executor._client.submit(remote_task, process_id, 0, sandbox.Limits(), "0" * 16, pure=False)
        with pytest.raises(ClusterError, match="runs other harness code .* install the same version"):
            executor._result(future, 0, 1)
    finally:
        executor.close()


HOSTILE = {
    "hangs": ("timeout", "def replicate_experts(weight, num_phy):\n    while True:\n        pass\n"),
    "segfaults": ("crash", "import ctypes\ndef replicate_experts(weight, num_phy):\n    ctypes.string_at(0)\n"),
    "hoards": ("memory", "def replicate_experts(weight, num_phy):\n    hoard = []\n    while True:\n"
                         "        hoard.append(bytearray(64 * 2**20))\n"),
    "hard_exits": ("exit", "import os\ndef replicate_experts(weight, num_phy):\n    os._exit(7)\n"),
}


@pytest.mark.slow
def test_hostile_candidates_are_contained_on_the_workers_and_the_workers_live_on(cluster, tmp_path):
    pids = cluster.worker_pids
    hostile = [from_source(baseline().source + "\n\n" + body, name=name) for name, (_, body) in HOSTILE.items()]
    store = Store(f"sqlite:///{tmp_path}/h.db")
    executor = DaskExecutor(cluster.address)
    try:
        config = RunConfig(limits=sandbox.Limits(timeout_s=10, memory_mb=512), repeats=1, executor=executor)
        evaluate(store, hostile, [Case("zipf", "mixtral-8x7b", 0, windows=2)], config)
    finally:
        executor.close()
    frame = store.evaluations_frame()
    kinds = {r.candidate: r.failure_kind if isinstance(r.failure_kind, str) else None for r in frame.itertuples()}
    assert kinds == {name: kind for name, (kind, _) in HOSTILE.items()} | {"deepseek_baseline": None}
    # The baseline, timed on a worker that survived all four.
    assert store.timings_frame()["timing_failure"].isna().tolist() == [True]
    assert cluster.worker_pids == pids and all(os.kill(pid, 0) is None for pid in pids)


SLOW = baseline().source + textwrap.dedent("""

    import time as _time
    _balanced_packing = balanced_packing
    def balanced_packing(weight, num_packs):
        _time.sleep(0.3)
        return _balanced_packing(weight, num_packs)
    """)


def run_in_thread(argv: list[str]) -> tuple[threading.Thread, dict]:
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("rc", main(argv)))
    thread.start()
    return thread, result


def wait_for_rows(db: str, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(Store(db).evaluations_frame()) >= n:
                return
        except Exception:  # the store is being created
            pass
        time.sleep(0.2)
    raise AssertionError(f"fewer than {n} results stored in {timeout} s")


@pytest.mark.slow
def test_a_worker_killed_mid_run_has_its_tasks_rerun_and_nothing_is_lost_or_stored_twice(tmp_path):
    slow = tmp_path / "slow.py"
    slow.write_text(SLOW)
    db = f"sqlite:///{tmp_path}/k.db"
    with dask_cluster(workers=2) as running:
        thread, result = run_in_thread(["evaluate", str(slow), FAST, "--suite", "smoke", "--no-timing", "--quiet",
                                        "--db", db, "--cluster", running.address, "--out", str(tmp_path / "o")])
        wait_for_rows(db, 3)
        victim = running.worker_pids[0]
        os.kill(victim, signal.SIGKILL)
        thread.join(300)
        assert victim not in running.worker_pids and len(running.worker_pids) == 1
    assert result == {"rc": 0}
    frame = Store(db).evaluations_frame()
    assert len(frame) == 18 and not frame.duplicated(["candidate_id", "case_key"]).any()
    assert frame["failure_kind"].isna().all()


@pytest.mark.slow
def test_losing_the_scheduler_ends_the_run_in_one_line_and_the_same_command_goes_on(tmp_path, capfd):
    slow = tmp_path / "slow.py"
    slow.write_text(SLOW)
    db = f"sqlite:///{tmp_path}/s.db"
    with dask_cluster(workers=2) as running:
        argv = ["evaluate", str(slow), FAST, "--suite", "smoke", "--no-timing", "--quiet", "--db", db,
                "--cluster", running.address, "--out", str(tmp_path / "o")]
        thread, result = run_in_thread(argv)
        wait_for_rows(db, 3)
        running.kill_scheduler()
        thread.join(120)
        assert result == {"rc": 1}
        err = capfd.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: lost the Dask scheduler at {running.address} after")
        assert "Traceback" not in err
        kept = len(Store(db).evaluations_frame())
        assert 3 <= kept < 18
        running.close()
        running.start_scheduler()  # on the same address
        running.add_worker()
        running.wait_for_workers(1)
        assert main(argv) == 0
    assert f"{kept} reused from the store" in capfd.readouterr().out
    frame = Store(db).evaluations_frame()
    assert len(frame) == 18 and not frame.duplicated(["candidate_id", "case_key"]).any()


def test_an_unreachable_scheduler_or_a_bad_address_is_one_line(tmp_path, capsys):
    argv = ["evaluate", FAST, "--suite", "smoke", "--db", f"sqlite:///{tmp_path}/u.db"]
    assert main([*argv, "--cluster", "tcp://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:9") and "\n" not in err
    assert main([*argv, "--cluster", "127.0.0.1:8786"]) == 2
    assert "is not a Dask scheduler address (tcp://HOST:PORT)" in capsys.readouterr().err
    assert Store(f"sqlite:///{tmp_path}/u.db").evaluations_frame().empty


def evolve_config(tmp_path: Path, **overrides) -> Path:
    config = {"name": "c", "parents": [str(ROOT / "candidates" / "deepseek_baseline.py"), FAST], "suite": "smoke",
              "seed": 3, "islands": 1, "children_per_island": 1, "max_evaluations": 4,
              "features": {"gpu_balancedness": [0.74, 0.745, 0.75]},
              "operators": {"knobs": {"weight": 1, "scale": 0.5}, "crossover": {"weight": 1}},
              "out": str(tmp_path / "out")} | overrides
    path = tmp_path / "evolve.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_bad_cluster_in_an_evolve_config_is_refused_before_anything_runs(tmp_path, capsys):
    path = evolve_config(tmp_path, cluster="localhost")
    assert main(["evolve", "--config", str(path), "--db", f"sqlite:///{tmp_path}/e.db"]) == 2
    assert "cluster: 'localhost' is not a Dask scheduler address" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_an_evolve_run_on_the_cluster_killed_with_the_harness_resumes_to_the_same_end(cluster, tmp_path):
    db = f"sqlite:///{tmp_path}/e.db"
    # The public suite: a private twin's seeds come from each store's own secret, and with these two
    # parents tied in one cell, which of them holds it (and so whether the run finds anything) would
    # differ between the two stores compared below.
    path = evolve_config(tmp_path, cluster=cluster.address, max_evaluations=6, private=False)
    command = [str(Path(sys.executable).with_name("eplb-harness")), "evolve", "--config", str(path), "--db", db]
    reference = subprocess.run([*command[:-1], f"sqlite:///{tmp_path}/reference.db"], capture_output=True,
                               text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr
    full = json.loads((tmp_path / "out" / "c" / "state.json").read_text())["evaluations"]
    shutil.rmtree(tmp_path / "out")
    harness = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "out" / "c" / "state.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and harness.poll() is None:
        if state.exists() and json.loads(state.read_text())["evaluations"] >= 1:
            break
        time.sleep(0.1)
    assert harness.poll() is None, "the run ended before it could be killed"
    harness.kill()
    harness.wait()
    saved = json.loads(state.read_text())
    assert 1 <= saved["evaluations"] < full  # cut short
    done = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    best = [line for line in done.stdout.splitlines() if line.startswith("best: ")]
    assert best == [line for line in reference.stdout.splitlines() if line.startswith("best: ")]  # the same end
    events = [json.loads(line) for line in (tmp_path / "out" / "c" / "events.jsonl").read_text().splitlines()]
    generations = [e["generation"] for e in events]
    assert generations == sorted(generations)  # the step cut short was redone once, not recorded twice
    stored = Store(db).evolution_events_frame("c")
    assert len(stored) == len(events)
    frame = Store(db).evaluations_frame()
    assert not frame.duplicated(["candidate_id", "case_key"]).any()


def test_replay_and_compare_on_the_cluster_give_the_local_figures(cluster, tmp_path, capsys):
    trace = str(ROOT / "traces" / "real" / "harmoeny_qwen15moe_bookcorpus.npy")
    replay = ["replay", FAST, "--trace", trace, "--preset", "qwen1.5-moe-a2.7b", "--every", "2", "--quiet"]
    assert main([*replay, "--out", str(tmp_path / "here"), "--db", f"sqlite:///{tmp_path}/r.db"]) == 0
    assert main([*replay, "--out", str(tmp_path / "there"), "--db", f"sqlite:///{tmp_path}/r.db",
                 "--cluster", cluster.address]) == 0
    here, there = ((tmp_path / d / "replay.csv").read_text() for d in ("here", "there"))
    assert here == there and len(here.splitlines()) > 3
    compare = ["compare", FAST, "--suite", "smoke", "--preset", "gpt-oss-120b", "--seeds", "0-1", "--quiet"]
    assert main([*compare, "--db", f"sqlite:///{tmp_path}/a.db", "--out", str(tmp_path / "ca")]) == 0
    assert main([*compare, "--db", f"sqlite:///{tmp_path}/b.db", "--out", str(tmp_path / "cb"),
                 "--cluster", cluster.address]) == 0
    assert (tmp_path / "ca" / "differences.csv").read_text() == (tmp_path / "cb" / "differences.csv").read_text()


def test_a_tuning_study_runs_its_trials_on_the_cluster(cluster, tmp_path, capsys):
    argv = ["tune", str(ROOT / "candidates" / "rounds_swap.py"), "--trials", "2", "--preset", "gpt-oss-120b",
            "--seed", "1", "--storage", f"sqlite:///{tmp_path}/o.db", "--db", f"sqlite:///{tmp_path}/t.db",
            "--out", str(tmp_path / "tune"), "--export", str(tmp_path / "tuned.py"), "--quiet"]
    assert main([*argv, "--cluster", cluster.address]) == 0
    assert "2 trials (2 complete)" in capsys.readouterr().out
