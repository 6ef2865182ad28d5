"""The `real` suite: recorded traces of real models, with provenance, scored on documented deployments."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from evaluator.scoring import score_case
from evaluator.suites import REAL_TRACES, get_suite
from harness.candidate import discover, load_module, rebalance_function

ROOT = Path(__file__).resolve().parent.parent
BUILT_IN = {c.name: c for c in discover(ROOT / "candidates")}

# A policy written for the published evaluators, which pass int64 token counts: anything
# else is refused with an invalid answer.
INT64_ONLY = '''
import torch

def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    if weight.dtype != torch.int64:
        return None
    layers, experts = weight.shape
    phy2log = (torch.arange(num_replicas) % experts).expand(layers, -1).contiguous()
    logcnt = torch.bincount(phy2log[0], minlength=experts).expand(layers, -1).contiguous()
    width = int(logcnt.max())
    log2phy = torch.full((layers, experts, width), -1, dtype=torch.int64)
    for slot in range(num_replicas):
        log2phy[:, slot % experts, slot // experts] = slot
    return phy2log, log2phy, logcnt
'''


def test_every_trace_has_its_provenance_and_a_documented_deployment():
    readme = (REAL_TRACES / "README.md").read_text()
    files = sorted(p.name for p in REAL_TRACES.glob("*.npy"))
    cases = get_suite("real")
    assert sorted(Path(c.trace).name for c in cases) == files and len(files) == 6
    for name in files:
        assert f"`{name}`" in readme
    for case in cases:
        p = case.get_preset()
        assert f"| `{case.preset}` | {p.num_experts} | {p.num_replicas} | {p.num_gpus} | {p.num_nodes} |" in readme
    shapes = {Path(c.trace).name: (c.windows, *c.shape) for c in cases}
    assert shapes["harmoeny_qwen15moe_bookcorpus.npy"] == (20, 12, 60)
    assert shapes["harmoeny_switch128_wikitext.npy"] == (30, 12, 128)
    assert shapes["mixtral8x7b_gsm8k_humaneval_pertoken.npy"] == (36, 32, 8)  # 585 tokens, 16 per window


def test_real_loads_are_whole_token_counts_passed_as_int64():
    for case in get_suite("real"):
        history = case.history()
        assert history.dtype.name == "int64" and history.min() >= 0 and history.sum() > 0


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_no_built_in_beats_the_bound_on_a_real_trace(name):
    rebalance = rebalance_function(load_module(BUILT_IN[name]))
    for case in get_suite("real"):
        scores = score_case(rebalance, case.history(), case.get_preset())
        assert scores["gap_to_bound"] <= 1 + 1e-9, case.name
        assert scores["oracle_gap_to_bound"] <= 1 + 1e-9, case.name
        assert 0 < scores["gpu_balancedness"] <= 1


def test_a_policy_that_needs_int64_counts_runs_scored_and_timed(tmp_path):
    path = tmp_path / "int64_only.py"
    path.write_text(INT64_ONLY)
    result = subprocess.run(
        [sys.executable, "-m", "harness", "evaluate", str(path), "--suite", "real", "--preset", "mixtral-8x7b",
         "--repeats", "2", "--db", f"sqlite:///{tmp_path}/h.db", "--out", str(tmp_path), "--quiet"],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    cases = pd.read_csv(tmp_path / "cases.csv")
    mine = cases[cases["candidate"] == "int64_only"]
    assert len(mine) == 1 and mine["ok"].all() and mine["runtime_ms"].notna().all()
