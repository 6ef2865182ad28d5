"""Optuna tuning: trials through the contained evaluator, export, plots, and many workers on PostgreSQL."""

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from PIL import Image
from postgres import find_pg_bin, postgres_server

from evaluator.suites import Case
from harness.candidate import baseline, from_file, from_source, load_module
from harness.diffs import make_child
from harness.store import Store
from harness.tuning import TuneSettings, export_best, tune, write_study_plots

ROOT = Path(__file__).resolve().parent.parent
FAST = ROOT / "candidates" / "vectorized_greedy.py"
CASES = [Case("zipf", "gpt-oss-120b", 0, windows=2), Case("hotspot", "mixtral-8x7b", 0, windows=2)]


def test_balance_study_exports_best_trial_and_plots(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/h.db")
    candidate = from_file(FAST)
    study, objective = tune(candidate, store, CASES, 5, "t", f"sqlite:///{tmp_path}/o.db",
                            TuneSettings(seed=0))
    assert len(study.trials) == 5
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete and all(0 < t.value <= 1 for t in complete)
    exported = export_best(study, objective, store, tmp_path / "tuned.py")
    assert f"SWAP_STEPS = {study.best_trial.params['SWAP_STEPS']}" in (tmp_path / "tuned.py").read_text()
    assert store.get_candidate(exported.id).parent_ids == (candidate.id,)
    load_module(exported)
    for path in write_study_plots(study, tmp_path / "plots"):
        with Image.open(path) as img:
            assert img.format == "PNG" and img.width > 300


def test_failing_trial_is_recorded_as_failed_with_reason(tmp_path):
    # SWAP_STEPS steers a loop count here; a negative-free knob that crashes when large.
    original = from_file(FAST).source
    source = original.replace("    if SWAP_STEPS:\n        _refine(item_w, (item_l, item_rank))",
                              "    if SWAP_STEPS > 4:\n        raise RuntimeError('too many swaps')")
    assert source != original
    candidate = from_source(source, name="fragile")
    study, _ = tune(candidate, Store(f"sqlite:///{tmp_path}/h.db"), CASES[:1], 6, "f",
                    f"sqlite:///{tmp_path}/o.db", TuneSettings(sampler="random", seed=1))
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed and all(t.params["SWAP_STEPS"] > 4 for t in failed)
    assert all("too many swaps" in t.user_attrs["failure"] for t in failed)
    assert all(t.params["SWAP_STEPS"] <= 4 for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)


def test_pareto_study_has_two_objectives(tmp_path):
    study, objective = tune(from_file(FAST), Store(f"sqlite:///{tmp_path}/h.db"), CASES[:1], 3, "p",
                            f"sqlite:///{tmp_path}/o.db", TuneSettings(objective="pareto", sampler="nsga2", seed=0))
    assert len(study.directions) == 2 and study.best_trials
    assert all(len(t.values) == 2 and t.values[1] > 0 for t in study.best_trials)
    names = {p.name for p in write_study_plots(study, tmp_path / "plots")}
    assert "pareto.png" in names


def test_literals_tune_a_seed_derived_child(tmp_path):
    child, _ = make_child(baseline(), (ROOT / "diffs" / "seeds" / "004_daa267963b024f97.txt").read_text())
    study, objective = tune(child, Store(f"sqlite:///{tmp_path}/h.db"), [Case("zipf", "mixtral-8x7b", 0, 2)], 2,
                            "lit", f"sqlite:///{tmp_path}/o.db", TuneSettings(literals=True, sampler="random",
                                                                               seed=0))
    assert any(k.default == 4 for k in objective.knobs)  # the seed's num_restarts = 4
    assert len(study.trials[0].params) == len(objective.knobs) > 3


@pytest.mark.skipif(find_pg_bin() is None, reason="PostgreSQL is not installed here (.ci/run installs it)")
@pytest.mark.slow
def test_concurrent_workers_share_one_postgres_study(tmp_path):
    with postgres_server() as url:
        args = [sys.executable, "-m", "harness", "tune", str(FAST), "--trials", "3", "--study", "shared",
                "--storage", url, "--db", url, "--suite", "smoke", "--preset", "gpt-oss-120b",
                "--out", str(tmp_path / "out"), "--export", str(tmp_path / "tuned.py")]
        workers = [subprocess.Popen(args + ["--seed", str(i)], cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for i in range(2)]
        outputs = [w.communicate(timeout=600) for w in workers]
        for w, (_, err) in zip(workers, outputs, strict=True):
            assert w.returncode == 0, err
        study = optuna.load_study(study_name="shared", storage=url)
        numbers = sorted(t.number for t in study.trials)
        assert numbers == list(range(6)), "a trial was lost or duplicated"
        assert all(t.state != optuna.trial.TrialState.RUNNING for t in study.trials)
        # The harness's own store works on the same PostgreSQL server.
        assert Store(url).get_candidate(from_file(FAST).id).name == "vectorized_greedy"


def test_samplers_come_from_one_registry_with_checked_options():
    from harness.samplers import SAMPLERS, make_sampler

    assert SAMPLERS.names() == ["tpe", "cmaes", "nsga2", "random"]
    assert type(make_sampler("nsga2", 3, multi_objective=True)).__name__ == "NSGAIISampler"
    with pytest.raises(ValueError, match="single-objective"):
        make_sampler("cmaes", 0, multi_objective=True)
    with pytest.raises(ValueError, match="unknown sampler 'grid'; known: tpe, cmaes, nsga2, random"):
        make_sampler("grid", 0, multi_objective=False)
    with pytest.raises(ValueError, match="sampler 'tpe': unknown option 'sede'"):
        SAMPLERS.create("tpe", {"sede": 1})
