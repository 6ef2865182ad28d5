"""Deployments other than a preset's: parsed, refused in one line, applied to cases, locality enforced."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from evaluator.deployment import Deployment, DeploymentError
from evaluator.presets import get_preset
from evaluator.scoring import score_case
from evaluator.suites import Case, get_suite
from evaluator.validation import ConstraintViolation, validate_on
from harness.candidate import discover, load_module, rebalance_function
from harness.cli import main
from harness.evolution import ConfigError, load_config, suite_cases

ROOT = Path(__file__).resolve().parent.parent
BUILT_IN = {c.name: c for c in discover(ROOT / "candidates")}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


def test_spec_round_trips_and_defaults_to_one_node_and_the_models_groups():
    d = Deployment.parse("gpus=8, slots=64")
    assert (d.num_replicas, d.num_gpus, d.num_nodes, d.num_groups, d.group_local) == (64, 8, 1, None, False)
    full = Deployment.parse("slots=320,gpus=32,nodes=4,groups=8,group_local=required")
    assert full.spec == "slots=320,gpus=32,nodes=4,groups=8,group_local=required"
    assert Deployment.parse(full.spec) == full
    p = get_preset("deepseek-v3").deployed(Deployment.parse("slots=320,gpus=32,nodes=4"))
    assert (p.num_layers, p.num_experts, p.num_groups, p.num_replicas, p.group_local) == (58, 256, 8, 320, False)


@pytest.mark.parametrize("spec, needle", [
    ("slots=100,gpus=32,nodes=4", "100 slots are not a multiple of 32 GPUs"),
    ("slots=288,gpus=32,nodes=5", "32 GPUs are not a multiple of 5 nodes"),
    ("slots=128,gpus=32,nodes=4", "128 slots are fewer than the 256 experts"),
    ("slots=288,gpus=32,nodes=4,groups=7", "256 experts do not divide into 7 groups"),
    ("slots=288,gpus=32,nodes=4,gpu=3", "unknown key 'gpu'"),
    ("slots=288,gpus=32,nodes=3,groups=8,group_local=required", "group_local=required needs the 8 groups"),
    ("slots=288", "gpus missing"),
    ("slots=288,gpus=-4", "gpus must be a positive integer"),
    ("slots=288,gpus=32,group_local=maybe", "group_local must be required or free"),
])
def test_bad_deployment_is_refused_in_one_line_with_exit_2(tmp_path, capsys, spec, needle):
    with pytest.raises(DeploymentError, match=needle):
        get_preset("deepseek-v3").deployed(Deployment.parse(spec))
    code = main(["evaluate", str(ROOT / "candidates" / "deepseek_baseline.py"), "--suite", "smoke", "--preset",
                 "deepseek-v3", "--deployment", spec, "--db", f"sqlite:///{tmp_path}/h.db", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "h.db").exists(), "nothing is written for a bad deployment"


@pytest.mark.slow
def test_a_bad_deployment_reaches_the_shell_as_one_line(tmp_path):
    for command in (["bench", "--preset", "mixtral-8x7b"], ["compare", "candidates/deepseek_baseline.py"]):
        result = cli(*command, "--deployment", "slots=4,gpus=4", "--db", f"sqlite:///{tmp_path}/h.db")
        assert result.returncode == 2 and "4 slots are fewer than the" in result.stderr, command
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_deployment_is_part_of_a_cases_name_and_key():
    case = get_suite("smoke")[0]
    other = case.with_deployment("slots=320,gpus=32,nodes=4")
    assert other.name == "zipf,windows=2@deepseek-v3[slots=320,gpus=32,nodes=4]#s0"
    assert other.key != case.key
    assert Case.from_dict(other.to_dict()) == other
    assert other.get_preset().num_replicas == 320 and case.get_preset().num_replicas == 288


def test_group_local_required_turns_a_group_split_into_a_constraint_failure():
    preset = get_preset("deepseek-v3").deployed(Deployment.parse("slots=288,gpus=32,nodes=4,group_local=required"))
    case = Case("group_skewed", "deepseek-v3", 0, windows=2)
    free = load_module(BUILT_IN["vectorized_greedy"])
    free.GROUP_LOCAL = 0
    with pytest.raises(ConstraintViolation, match=r"expert group \d+ of layer \d+ has replicas on nodes"):
        score_case(rebalance_function(free), case.history(), preset)
    # The same candidate keeping groups whole passes, and its grouped bound is now the bound.
    local = rebalance_function(load_module(BUILT_IN["vectorized_greedy"]))
    scores = score_case(local, case.history(), preset)
    assert scores["group_node_spread"] == 1.0
    assert scores["gpu_balancedness_bound"] == scores["grouped_bound"]
    assert scores["gap_to_bound"] <= 1 + 1e-9
    weight = torch.from_numpy(case.history()[0])
    validate_on(local(weight, *preset.rebalance_args()), preset)  # no raise


@pytest.mark.slow
def test_constraint_failures_are_stored_with_their_kind(tmp_path):
    spec = "slots=288,gpus=32,nodes=4,group_local=required"
    db = f"sqlite:///{tmp_path}/h.db"
    result = cli("evaluate", str(ROOT / "candidates" / "vectorized_greedy.py"), "--sweep", "GROUP_LOCAL=0",
                 "--suite", "smoke", "--preset", "deepseek-v3", "--deployment", spec, "--no-timing", "--jobs", "2",
                 "--db", db, "--out", str(tmp_path), "--quiet")
    assert result.returncode == 0, result.stderr
    cases = pd.read_csv(tmp_path / "cases.csv")
    split = cases[cases["candidate"] == "vectorized_greedy@GROUP_LOCAL=0"]
    whole = cases[cases["candidate"] == "vectorized_greedy"]
    assert len(split) == 3 and (split["failure_kind"] == "constraint").all()
    assert split["reason"].str.contains("group_local=required").all()
    assert whole["ok"].all() and (whole["group_node_spread"] == 1.0).all()
    assert cases["case"].str.contains(r"\[slots=288,gpus=32,nodes=4,group_local=required\]", regex=True).all()


def test_evolve_config_takes_a_deployment(tmp_path):
    base = "name: d\nparents: [candidates/deepseek_baseline.py]\noperators: {knobs: {}}\nsuite: smoke\n"
    good = tmp_path / "good.yaml"
    good.write_text(base + "deployment: slots=320,gpus=32,nodes=4\n")
    config = load_config(good)
    assert {c.get_preset().num_replicas for c in suite_cases(config) if c.preset == "deepseek-v3"} == {320}
    bad = tmp_path / "bad.yaml"
    bad.write_text(base + "deployment: slots=100,gpus=32\n")
    with pytest.raises(ConfigError, match="100 slots are not a multiple of 32 GPUs"):
        load_config(bad)


def test_trace_takes_its_layers_and_experts_and_a_presets_deployment():
    case = get_suite("real")[0]
    preset = case.get_preset()
    assert (preset.num_layers, preset.num_experts, preset.num_replicas, preset.num_gpus) == (12, 60, 64, 8)
    moved = replace(case, deployment=None).with_deployment("slots=120,gpus=8,nodes=2")
    assert moved.get_preset().num_replicas == 120 and moved.get_preset().num_layers == 12
