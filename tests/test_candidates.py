"""Every built-in candidate produces valid placements on every preset."""

from pathlib import Path

import numpy as np
import pytest
import torch

from evaluator.metrics import gpu_loads
from evaluator.presets import PRESETS
from evaluator.validation import validate_placement
from evaluator.workloads import generate
from harness.candidate import baseline, discover, load_module, rebalance_function

BUILT_IN = discover(Path(__file__).resolve().parent.parent / "candidates")


@pytest.mark.parametrize("candidate", BUILT_IN, ids=lambda c: c.name)
@pytest.mark.parametrize("preset", list(PRESETS.values()), ids=lambda p: p.name)
def test_built_in_candidate_is_valid_on_preset_with_int_and_float_loads(candidate, preset):
    rebalance = rebalance_function(load_module(candidate))
    counts = torch.from_numpy(generate("zipf", preset, seed=1, windows=1)[0])
    assert counts.dtype == torch.int64  # what the harness passes, as published evaluators do
    placements = []
    for weight in (counts, counts.double(), counts.float()):
        placements.append(validate_placement(rebalance(weight, *preset.rebalance_args()), preset.num_layers,
                                             preset.num_experts, preset.num_replicas, preset.num_gpus))
    # Whole-number loads: the dtype must not change the answer (float32 holds these counts exactly).
    assert all(torch.equal(p[0], placements[0][0]) for p in placements[1:])


def test_vectorized_replication_gives_the_greedy_counts():
    fast = load_module(next(c for c in BUILT_IN if c.name == "vectorized_greedy"))
    slow = load_module(baseline())
    weight = torch.from_numpy(np.random.default_rng(0).lognormal(0, 1.5, (40, 64)))
    assert torch.equal(fast.replicate_experts(weight, 90)[2], slow.replicate_experts(weight, 90)[2])


@pytest.mark.parametrize("preset", list(PRESETS.values()), ids=lambda p: p.name)
def test_fast_candidate_without_duplicate_spreading_is_the_baseline_slot_for_slot(preset):
    module = load_module(next(c for c in BUILT_IN if c.name == "vectorized_greedy"))
    module.SPREAD_DUPLICATES = 0
    weight = torch.from_numpy(np.random.default_rng(5).lognormal(0, 1.2, (preset.num_layers, preset.num_experts)))
    fast = rebalance_function(module)(weight, *preset.rebalance_args())
    slow = rebalance_function(load_module(baseline()))(weight, *preset.rebalance_args())
    validate_placement(fast, preset.num_layers, preset.num_experts, preset.num_replicas, preset.num_gpus)
    assert torch.equal(fast[2], slow[2])
    # The baseline packs float32 loads and this float64 ones, so two packs within float32
    # rounding of each other can take an item in the other order (1 layer in 58 at most here).
    same_layers = (fast[0] == slow[0]).all(dim=1).float().mean()
    assert same_layers >= 0.98
    peaks = [gpu_loads(weight, out[0], out[2], preset.num_gpus).max(dim=1).values for out in (fast, slow)]
    assert torch.allclose(peaks[0], peaks[1], rtol=1e-6)


@pytest.mark.parametrize("preset", list(PRESETS.values()), ids=lambda p: p.name)
def test_fast_candidate_never_has_a_heavier_gpu_than_the_baseline(preset):
    # Same counts and the same LPT rule, so the same loads; its duplicate swaps never raise the max.
    # Continuous loads, so no two items tie and the tie order cannot matter.
    fast = rebalance_function(load_module(next(c for c in BUILT_IN if c.name == "vectorized_greedy")))
    slow = rebalance_function(load_module(baseline()))
    weight = torch.from_numpy(np.random.default_rng(3).lognormal(0, 1.2, (preset.num_layers, preset.num_experts)))
    peaks = []
    for policy in (fast, slow):
        phy2log, _, logcnt = policy(weight, *preset.rebalance_args())
        peaks.append(gpu_loads(weight, phy2log, logcnt, preset.num_gpus).max(dim=1).values)
    assert torch.all(peaks[0] <= peaks[1] * (1 + 1e-9))
    assert torch.allclose(torch.median(peaks[0]), torch.median(peaks[1]), rtol=1e-2)


def test_rounds_swap_first_start_is_the_greedy_counts_and_the_second_fills_whole_rounds():
    rounds = load_module(next(c for c in BUILT_IN if c.name == "rounds_swap"))
    slow = load_module(baseline())
    weight = -np.sort(-np.random.default_rng(0).lognormal(0, 1.5, (40, 64)), axis=1)  # heaviest first
    starts, held = rounds._counts(weight, 90, 64, 6)  # every expert in the head: [X, 2, E]
    assert np.array_equal(starts[:, 0], slow.replicate_experts(torch.from_numpy(weight), 90)[2].numpy())
    assert (starts.sum(axis=2) == 90).all() and (starts >= 1).all() and (held[:, 0] == 0).all()
    # Four hot experts and 28 cold, 48 slots on 8 GPUs: the greedy splits the hot ones into 5 replicas
    # each, 20 (two rounds of 8 and 4 more); the second start holds back 20 % 8 = 4, so they fill two
    # whole rounds (4 each) and the 4 held-back slots split the next heaviest experts.
    hot = np.array([[40.0, 40, 40, 40] + [1.0] * 28])
    counts, held = rounds._counts(hot, 48, 32, 8)
    assert counts[0, 0, :4].tolist() == [5, 5, 5, 5] and held[0, 1] == 4
    assert counts[0, 1, :4].tolist() == [4, 4, 4, 4] and counts[0, 1].sum() == 48


@pytest.mark.parametrize("group_local", [0, 1])
@pytest.mark.parametrize("preset_name", list(PRESETS))
def test_rounds_swap_with_one_start_is_valid_on_every_preset(preset_name, group_local):
    from evaluator.presets import get_preset
    from evaluator.validation import validate_on

    preset = get_preset(preset_name)
    module = load_module(next(c for c in BUILT_IN if c.name == "rounds_swap"))
    module.STARTS, module.GROUP_LOCAL = 1, group_local
    weight = torch.from_numpy(generate("zipf", preset, seed=1, windows=1)[0])
    phy2log, _, logcnt = validate_on(rebalance_function(module)(weight, *preset.rebalance_args()), preset)
    two = load_module(next(c for c in BUILT_IN if c.name == "rounds_swap"))
    two.GROUP_LOCAL = group_local
    phy2log2, _, logcnt2 = rebalance_function(two)(weight, *preset.rebalance_args())
    # The second start is a choice per layer: with it, no layer's heaviest GPU is heavier.
    peak = gpu_loads(weight, phy2log, logcnt, preset.num_gpus).max(dim=1).values
    peak2 = gpu_loads(weight, phy2log2, logcnt2, preset.num_gpus).max(dim=1).values
    assert torch.all(peak2 <= peak * (1 + 1e-6))


CHOOSING = [c for c in BUILT_IN if "GROUP_LOCAL = 1" in c.source]


@pytest.mark.parametrize("candidate", CHOOSING, ids=lambda c: c.name)
@pytest.mark.parametrize("group_local", [0, 1])
@pytest.mark.parametrize("preset_name,spec", [
    ("deepseek-v3", None),
    ("deepseek-v3", "slots=320,gpus=32,nodes=4"),  # 10 slots a GPU
    ("deepseek-v3", "slots=256,gpus=32,nodes=4"),  # no spare slot
    ("deepseek-v3", "slots=288,gpus=32,nodes=4,group_local=required"),
    ("qwen3-235b", "slots=160,gpus=16,nodes=2"),
    ("mixtral-8x7b", "slots=8,gpus=8"),  # one slot a GPU
])
def test_group_choosing_candidates_are_valid_on_every_deployment_mode(candidate, group_local, preset_name, spec):
    from evaluator.deployment import Deployment
    from evaluator.presets import get_preset
    from evaluator.validation import ConstraintViolation, validate_on

    preset = get_preset(preset_name)
    preset = preset.deployed(Deployment.parse(spec)) if spec else preset
    module = load_module(candidate)
    module.GROUP_LOCAL = group_local
    rebalance = rebalance_function(module)
    weight = torch.from_numpy(generate("group_skewed", preset, seed=2, windows=1)[0])
    output = rebalance(weight, *preset.rebalance_args())
    if preset.group_local and not group_local:
        with pytest.raises(ConstraintViolation):  # groups split where the deployment requires them whole
            validate_on(output, preset)
    else:
        validate_on(output, preset)


FORECASTING = [c for c in BUILT_IN if "FORECAST = 0" in c.source]


@pytest.mark.parametrize("candidate", FORECASTING, ids=lambda c: c.name)
@pytest.mark.parametrize("family", ["zipf", "drifting", "bursty"])
@pytest.mark.parametrize("preset_name,spec", [
    *[(name, None) for name in PRESETS],
    ("deepseek-v3", "slots=256,gpus=32,nodes=4"),
    ("deepseek-v3", "slots=288,gpus=32,nodes=4,group_local=required"),
    ("mixtral-8x7b", "slots=8,gpus=8"),
])
def test_forecasting_candidates_are_valid_with_any_history_on_every_preset_and_deployment(
        candidate, family, preset_name, spec):
    from evaluator.deployment import Deployment
    from evaluator.presets import get_preset
    from evaluator.scoring import score_case

    preset = get_preset(preset_name)
    preset = preset.deployed(Deployment.parse(spec)) if spec else preset
    module = load_module(candidate)
    module.FORECAST = 1
    history = generate(family, preset, seed=3, windows=4)
    history[2, :, : preset.num_experts // 3] = 0  # experts that see no token in a window
    # score_case validates every window's placement (raising on an invalid one), each given the windows before.
    scores = score_case(rebalance_function(module), history, preset)
    assert scores["windows_scored"] == 3 and 0 < scores["gpu_balancedness"] <= 1
