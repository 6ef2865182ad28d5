"""Synthetic workload families: shapes, determinism, character."""

import numpy as np
import pytest

from evaluator.presets import PRESETS, UnknownPresetError, get_preset
from evaluator.suites import SUITES, Case, UnknownSuiteError, get_suite
from evaluator.workloads import WORKLOADS, generate


@pytest.mark.parametrize("family", list(WORKLOADS))
def test_every_family_is_reproducible_from_its_seed(family):
    preset = get_preset("deepseek-v3")
    a = generate(family, preset, seed=7, windows=3)
    b = generate(family, preset, seed=7, windows=3)
    c = generate(family, preset, seed=8, windows=3)
    assert a.shape == (3, 58, 256) and a.dtype == np.int64
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert (a >= 0).all() and (a.sum(axis=-1) > 0).all()


def test_skewed_families_are_more_skewed_than_uniform():
    preset = get_preset("qwen3-235b")

    def peak_to_mean(family):
        h = generate(family, preset, seed=0, windows=1)[0].astype(float)
        return float((h.max(axis=1) / h.mean(axis=1)).mean())

    assert peak_to_mean("uniform") < 1.5
    for family in ("zipf", "hotspot", "lognormal", "group_skewed"):
        assert peak_to_mean(family) > 2 * peak_to_mean("uniform")


def test_group_skewed_makes_whole_groups_hot():
    preset = get_preset("deepseek-v3")
    h = generate("group_skewed", preset, seed=0, windows=1)[0].astype(float)
    groups = h.reshape(58, 8, 32).sum(-1)
    assert float((groups.max(1) / groups.mean(1)).mean()) > 2.0


def test_drifting_moves_hot_experts_between_windows():
    preset = get_preset("deepseek-v3")
    h = generate("drifting", preset, seed=0, windows=4).astype(float)
    stationary = generate("lognormal", preset, seed=0, windows=4).astype(float)

    def change(x):
        return float(np.abs(x[-1] - x[0]).sum() / x[0].sum())

    assert change(h) > 2 * change(stationary)


def test_default_suite_covers_every_family_three_presets_both_modes():
    cases = get_suite("default")
    assert {c.family for c in cases} == set(WORKLOADS)
    presets = {c.preset for c in cases}
    assert len(presets) >= 3
    assert {get_preset(p).hierarchical for p in presets} == {True, False}
    assert len({c.key for c in cases}) == len(cases)


def test_unknown_names_say_what_is_known():
    with pytest.raises(UnknownPresetError, match="known: deepseek-v3"):
        get_preset("nope")
    with pytest.raises(UnknownSuiteError, match="known: default"):
        get_suite("nope")


def test_presets_state_real_model_shapes():
    ds = PRESETS["deepseek-v3"]
    assert (ds.num_layers, ds.num_experts, ds.num_groups, ds.num_replicas, ds.num_nodes, ds.num_gpus) == (
        58, 256, 8, 288, 4, 32)
    assert PRESETS["qwen3-235b"].num_layers == 94 and PRESETS["qwen3-235b"].num_experts == 128
    assert PRESETS["kimi-k2"].num_experts == 384 and PRESETS["kimi-k2"].num_layers == 60
    assert PRESETS["gpt-oss-120b"].num_layers == 36 and PRESETS["mixtral-8x7b"].num_experts == 8


def test_case_round_trips_through_its_dict():
    case = Case("zipf", "gpt-oss-120b", 3, 4, (("exponent", 1.2),))
    assert Case.from_dict(case.to_dict()) == case
    assert "exponent=1.2" in case.name
    assert all(get_suite(name) for name in SUITES)


def test_a_new_workload_family_changes_no_suite():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import dataclasses, evaluator.workloads as w; "
            "w.WORKLOADS.register('new_family')(dataclasses.make_dataclass('New', [], bases=(w.Workload,))); "
            "from evaluator.suites import get_suite; print(len(get_suite('default')), len(get_suite('full')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout.split()
    assert out == ["27", "105"]
