"""Misbehaving candidates run through the real worker path and are recorded by kind."""

import textwrap
from pathlib import Path

import pytest

from evaluator.suites import Case
from harness import sandbox
from harness.candidate import baseline, from_source
from harness.leaderboard import case_results
from harness.runner import RunConfig, evaluate
from harness.store import Store

BASE = baseline().source


def variant(name: str, body: str):
    """The baseline with replicate_experts replaced by ``body`` (appended definitions win)."""
    return from_source(BASE + "\n\n" + textwrap.dedent(body), name=name)


MISBEHAVING = {
    "raises": ("error", """
        def replicate_experts(weight, num_phy):
            raise RuntimeError("boom")
        """),
    "exits": ("exit", """
        import sys
        def replicate_experts(weight, num_phy):
            sys.exit(3)
        """),
    "hard_exits": ("exit", """
        import os
        def replicate_experts(weight, num_phy):
            os._exit(7)
        """),
    "segfaults": ("crash", """
        import ctypes
        def replicate_experts(weight, num_phy):
            ctypes.string_at(0)
        """),
    "loops": ("timeout", """
        def replicate_experts(weight, num_phy):
            while True:
                pass
        """),
    "hogs_memory": ("memory", """
        def replicate_experts(weight, num_phy):
            hoard = []
            while True:
                hoard.append(bytearray(64 * 2**20))
        """),
    "floods_output": ("output", """
        def replicate_experts(weight, num_phy):
            while True:
                print("x" * 65536)
        """),
    "garbage": ("invalid", """
        import torch
        def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
            L, E = weight.shape
            return (torch.zeros(L, num_replicas, dtype=torch.int64),
                    torch.zeros(L, E, 1, dtype=torch.int64), torch.ones(L, E, dtype=torch.int64))
        """),
    "bad_import": ("contract", """
        import no_such_module_here
        """),
}

CASES = [Case("zipf", "mixtral-8x7b", 0, windows=2), Case("hotspot", "mixtral-8x7b", 1, windows=2)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('db')}/h.db")
    candidates = [variant(name, body) for name, (_, body) in MISBEHAVING.items()]
    good = from_source(BASE + "\n# an unchanged copy, under another name\n", name="good_copy")
    config = RunConfig(limits=sandbox.Limits(timeout_s=5, memory_mb=512, output_mb=1), jobs=2, repeats=2,
                       quiet=True)
    report = evaluate(store, candidates + [good], CASES, config)
    return store, report, case_results(store, [c.key for c in CASES])


@pytest.mark.parametrize("name", list(MISBEHAVING))
def test_misbehaviour_is_recorded_with_its_kind(run, name):
    _, _, per_case = run
    rows = per_case[per_case["candidate"] == name]
    assert len(rows) == len(CASES)
    assert set(rows["failure_kind"]) == {MISBEHAVING[name][0]}, rows["reason"].tolist()
    assert all(isinstance(r, str) and r and "\n" not in r for r in rows["reason"])


def test_good_candidates_in_the_same_run_are_scored_and_timed(run):
    _, report, per_case = run
    good = per_case[per_case["candidate"].isin(["good_copy", "deepseek_baseline"])]
    assert len(good) == 2 * len(CASES)
    assert good["ok"].all()
    assert (good["gpu_balancedness"] > 0.5).all()
    assert good["runtime_ms"].notna().all()
    assert report.broken == {"bad_import": per_case.loc[per_case["candidate"] == "bad_import", "reason"].iloc[0]}


def test_results_do_not_depend_on_jobs(run, tmp_path):
    store, _, per_case = run
    serial_store = Store(f"sqlite:///{tmp_path}/serial.db")
    evaluate(serial_store, [], CASES, RunConfig(jobs=1, quiet=True, time_runs=False))
    serial = case_results(serial_store, [c.key for c in CASES]).set_index("case_key")
    parallel = per_case[per_case["candidate"] == "deepseek_baseline"].set_index("case_key")
    for col in ("gpu_balancedness", "node_balancedness", "gap_to_bound", "oracle_gpu_balancedness"):
        assert serial.loc[parallel.index, col].tolist() == parallel[col].tolist()


def test_stored_results_are_reused_unless_forced(run):
    store, _, _ = run
    config = RunConfig(quiet=True, time_runs=False)
    again = evaluate(store, [variant("raises", MISBEHAVING["raises"][1])], CASES, config)
    assert (again.scored, again.reused) == (0, 2 * len(CASES))
    forced = evaluate(store, [], CASES, RunConfig(quiet=True, time_runs=False, force=True))
    assert forced.scored == len(CASES)


def test_load_failures_count_in_the_run_summary(run):
    _, report, per_case = run
    assert report.failed == int((~per_case["ok"].astype(bool)).sum()) == (len(MISBEHAVING)) * len(CASES)
    assert report.scored == len(per_case)


def test_stored_results_are_keyed_on_the_scoring_code(tmp_path):
    import shutil

    from harness.store import SCORING_CODE, scoring_code_version

    root = Path(__file__).resolve().parent.parent
    for pattern in SCORING_CODE:
        for path in root.glob(pattern):
            target = tmp_path / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    assert scoring_code_version(tmp_path) == scoring_code_version(root)
    bounds = tmp_path / "evaluator" / "bounds.py"
    bounds.write_text(bounds.read_text() + "\n# an edit\n")
    assert scoring_code_version(tmp_path) != scoring_code_version(root)
    # A workload family lives in a subpackage: its change re-scores too.
    bounds.write_text((root / "evaluator" / "bounds.py").read_text())
    zipf = tmp_path / "evaluator" / "workloads" / "zipf.py"
    zipf.write_text(zipf.read_text().replace("exponent: float = 1.0", "exponent: float = 1.1"))
    assert scoring_code_version(tmp_path) != scoring_code_version(root)
