"""Replay: rebalance schedule, load estimators, migration counts by hand, and the command."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from evaluator.migration import migration
from evaluator.presets import get_preset
from evaluator.replay import ReplayPolicy, estimate, replay
from harness.policy import build_log2phy
from harness.store import Store

ROOT = Path(__file__).resolve().parent.parent
MIX = get_preset("mixtral-8x7b")  # 32 layers, 8 experts, 16 slots on 4 GPUs


def placement(phy2log_row: list[int]):
    phy2log = torch.tensor([phy2log_row] * MIX.num_layers)
    logcnt = torch.zeros(MIX.num_layers, MIX.num_experts, dtype=torch.int64).scatter_add_(
        1, phy2log, torch.ones_like(phy2log))
    rank = torch.zeros_like(phy2log)
    for layer in range(MIX.num_layers):
        seen: dict[int, int] = {}
        for slot, e in enumerate(phy2log_row):
            rank[layer, slot] = seen.get(e, 0)
            seen[e] = seen.get(e, 0) + 1
    return phy2log, build_log2phy(phy2log, rank, MIX.num_experts), logcnt


A = [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7]
B = [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 0]  # GPU 3 trades its expert 7 for a copy of expert 0


def test_migration_counts_by_hand():
    old = np.array([[0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7]])
    # Pure relabelling of the 4 GPUs (one node): every slot changes, no copy has to move.
    relabelled = np.array([[4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3]])
    m = migration(old, relabelled, num_nodes=1, num_gpus=4)
    assert (m.slots_changed, m.copies_transferred) == (16, 0)
    # Reordering slots inside a GPU moves nothing either.
    swapped = np.array([[1, 0, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7]])
    assert migration(old, swapped, 1, 4).copies_transferred == 0
    # GPU 0 swaps expert 3 for a second copy of 7: exactly one copy crosses, 2 GiB at 2 GiB/expert.
    one_new = np.array([[0, 1, 2, 7, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 3]])
    m = migration(old, one_new, 1, 4, expert_bytes=2.0)
    assert (m.slots_changed, m.copies_transferred, m.bytes_moved) == (2, 2, 4.0)
    # GPUs are relabelled only inside a node: swapping the two nodes' experts moves every copy.
    by_node = np.array([[0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7]])
    nodes_swapped = np.array([[4, 5, 6, 7, 4, 5, 6, 7, 0, 1, 2, 3, 0, 1, 2, 3]])
    assert migration(by_node, nodes_swapped, 1, 4).copies_transferred == 0
    assert migration(by_node, nodes_swapped, 2, 4).copies_transferred == 16


def test_estimators_use_only_past_windows():
    windows = np.arange(4 * 2 * 3, dtype=float).reshape(4, 2, 3)
    assert np.array_equal(estimate(windows, 3, ReplayPolicy(estimator="last")), windows[2])
    assert np.array_equal(estimate(windows, 3, ReplayPolicy(estimator="sliding", span=2)), windows[1] + windows[2])
    ema = 0.5 * windows[2] + 0.5 * (0.5 * windows[1] + 0.5 * windows[0])
    assert np.allclose(estimate(windows, 3, ReplayPolicy(estimator="ema", alpha=0.5)), ema)


def test_replay_rebalances_on_schedule_and_counts_migrations():
    # Windows where expert 0 or expert 1 is hotter, alternating; the fake policy picks A or B.
    hot = [0, 1, 0, 1, 1, 0, 0]
    windows = np.ones((len(hot), MIX.num_layers, MIX.num_experts))
    for t, e in enumerate(hot):
        windows[t, :, e] = 10

    def fake_rebalance(weight, *args, previous_phy2log=None, load_history=None):
        return placement(A if weight[0, 0] > weight[0, 1] else B)

    records = replay(fake_rebalance, windows, MIX, ReplayPolicy(every=2, estimator="last", expert_bytes=100.0))
    assert [r["window"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert [r["rebalanced"] for r in records] == [True, False, True, False, True, False]
    # Rebalances at t=1 (from window 0: A), t=3 (window 2: A, no move), t=5 (window 4: B: one
    # slot per layer now holds expert 0, which its GPU did not have: 32 copies).
    assert [r["slots_changed"] for r in records] == [0, 0, 0, 0, 32, 0]
    assert [r["copies_transferred"] for r in records] == [0, 0, 0, 0, 32, 0]
    assert records[4]["bytes_moved"] == 3200.0
    assert all(0 < r["gpu_balancedness"] <= r["gpu_balancedness_bound"] + 1e-12 for r in records)


def test_replay_command_prints_table_and_writes_timeline(tmp_path):
    steps = np.random.default_rng(0).integers(0, 100, (12, 32, 8))
    (trace := tmp_path / "t.json").write_text(
        json.dumps({"load_history": [{"logical_expert_load": s.tolist()} for s in steps]}))
    result = subprocess.run(
        [sys.executable, "-m", "harness", "replay", str(ROOT / "candidates" / "deepseek_baseline.py"),
         str(ROOT / "candidates" / "vectorized_greedy.py"), "--trace", str(trace), "--preset", "mixtral-8x7b",
         "--window", "2", "--every", "2", "--estimator", "sliding", "--out", str(tmp_path / "out"),
         "--db", f"sqlite:///{tmp_path}/r.db"],
        capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "deepseek_baseline:bal" in result.stdout and "vectorized_greedy:copies" in result.stdout
    records = pd.read_csv(tmp_path / "out" / "replay.csv")
    assert len(records) == 2 * 5 and set(records["window"]) == {1, 2, 3, 4, 5}
    assert (records.loc[~records["rebalanced"], "copies_transferred"] == 0).all()
    assert (records["copies_transferred"] <= records["slots_changed"]).all()
    assert (tmp_path / "out" / "timeline.png").stat().st_size > 10_000
    stored = Store(f"sqlite:///{tmp_path}/r.db").replays_frame()  # the report's timeline reads these
    assert sorted(stored["candidate"]) == ["deepseek_baseline", "vectorized_greedy"]  # in completion order
    assert stored["policy"][0]["estimator"] == "sliding" and [len(r) for r in stored["records"]] == [5, 5]


def test_bad_policy_is_refused():
    with pytest.raises(ValueError, match="unknown estimator"):
        ReplayPolicy(estimator="crystal-ball")


@pytest.mark.slow
def test_replay_takes_a_deployment_instead_of_a_preset(tmp_path):
    steps = np.random.default_rng(1).integers(0, 100, (6, 4, 8))  # 4 layers x 8 experts
    (trace := tmp_path / "t.json").write_text(
        json.dumps({"load_history": [{"logical_expert_load": s.tolist()} for s in steps]}))
    base = [sys.executable, "-m", "harness", "replay", str(ROOT / "candidates" / "vectorized_greedy.py"),
            "--trace", str(trace), "--window", "1", "--out", str(tmp_path / "out"), "--db", f"sqlite:///{tmp_path}/r.db"]
    result = subprocess.run(base + ["--deployment", "slots=12,gpus=4,nodes=2,groups=2,group_local=required"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    records = pd.read_csv(tmp_path / "out" / "replay.csv")
    assert len(records) == 5 and (records["gpu_balancedness"] <= records["gpu_balancedness_bound"] + 1e-12).all()
    neither = subprocess.run(base, capture_output=True, text=True, cwd=ROOT)
    assert neither.returncode == 2 and "--trace needs a --preset or a --deployment" in neither.stderr
