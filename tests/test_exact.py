"""The exact MIP reference against the bound and the built-in candidates, on shapes it can solve."""

from pathlib import Path

import numpy as np
import pytest
import torch

from evaluator.bounds import grouped_max_gpu_load_lower_bound, max_gpu_load_lower_bound, min_max_replica_load
from evaluator.exact import solve_layer
from evaluator.metrics import gpu_loads
from harness.candidate import discover, load_module, rebalance_function

CANDIDATES = Path(__file__).resolve().parent.parent / "candidates"
BUILT_IN = {c.name: rebalance_function(load_module(c)) for c in discover(CANDIDATES)}
JOINT_EXAMPLE = [600.0, 560.0, 120.0, 120.0, 20.0, 10.0, 10.0, 10.0]


def _max_gpu_load(rebalance, load: np.ndarray, num_replicas, num_groups, num_nodes, num_gpus) -> float:
    weight = torch.from_numpy(load[None].astype(np.float64))
    phy2log, _, logcnt = rebalance(weight, num_replicas, num_groups, num_nodes, num_gpus)
    return float(gpu_loads(weight, phy2log, logcnt, num_gpus).max())


@pytest.mark.slow
def test_exact_reference_proves_the_joint_example_optimum():
    result = solve_layer(np.array(JOINT_EXAMPLE), num_replicas=16, num_gpus=8)
    assert result.optimal
    assert result.max_gpu_load == pytest.approx(590 / 3)  # 560/3 + 10: counts [5, 3, 2, 2, 1, 1, 1, 1]
    assert result.lower_bound == pytest.approx(result.max_gpu_load)
    # Its placement is a real one with that max load.
    assert sorted(result.phy2log.tolist()) == sorted(np.repeat(np.arange(8), result.logcnt).tolist())
    recomputed = gpu_loads(torch.tensor([JOINT_EXAMPLE]), torch.from_numpy(result.phy2log[None]),
                           torch.from_numpy(result.logcnt[None]), 8)
    assert float(recomputed.max()) == pytest.approx(result.max_gpu_load)


def test_joint_count_search_beats_the_greedy_232_on_the_joint_example_and_reaches_the_optimum_with_more_donors():
    load = np.array(JOINT_EXAMPLE)
    assert _max_gpu_load(BUILT_IN["deepseek_baseline"], load, 16, 1, 1, 8) == pytest.approx(232)
    assert _max_gpu_load(BUILT_IN["joint_count_search"], load, 16, 1, 1, 8) <= 200 + 1e-9  # counts [4, 4, 2, 2, ...]
    module = load_module(next(c for c in discover(CANDIDATES) if c.name == "joint_count_search"))
    module.DONORS = 3  # a knob: one more donor per round lets it move e1's replica to e0 as well
    assert _max_gpu_load(module.rebalance_experts, load, 16, 1, 1, 8) == pytest.approx(590 / 3)


def _random_cases(count: int, seed: int, skew: float = 1.2):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        num_gpus = int(rng.choice([2, 3, 4]))
        num_log = int(rng.integers(3, 8))
        slots = -(-num_log // num_gpus) + int(rng.integers(0, 2))
        load = np.round(rng.lognormal(0, skew, num_log) * 100)
        yield load, slots * num_gpus, num_gpus


@pytest.mark.parametrize("case", list(_random_cases(6, seed=7)), ids=lambda c: f"E{len(c[0])}-P{c[1]}-G{c[2]}")
def test_bound_is_valid_and_no_candidate_beats_the_exact_optimum(case):
    load, num_replicas, num_gpus = case
    exact = solve_layer(load, num_replicas, num_gpus)
    assert exact.optimal
    bound = float(max_gpu_load_lower_bound(torch.from_numpy(load[None]), num_replicas, num_gpus)[0])
    assert bound <= exact.max_gpu_load + 1e-9
    for name, rebalance in BUILT_IN.items():
        reached = _max_gpu_load(rebalance, load, num_replicas, 1, 1, num_gpus)
        assert reached >= exact.max_gpu_load - 1e-9, name
    assert _max_gpu_load(BUILT_IN["joint_count_search"], load, num_replicas, 1, 1, num_gpus) <= _max_gpu_load(
        BUILT_IN["deepseek_baseline"], load, num_replicas, 1, 1, num_gpus) + 1e-9


def test_grouped_bound_is_valid_against_the_group_preserving_optimum():
    rng = np.random.default_rng(3)
    for _ in range(3):
        load = np.round(rng.lognormal(0, 1.0, 8) * 100)  # 4 groups of 2 experts, 2 nodes of 2 GPUs
        exact = solve_layer(load, 12, 4, num_groups=4, num_nodes=2, groups_on_nodes=True)
        assert exact.optimal
        bound = float(grouped_max_gpu_load_lower_bound(torch.from_numpy(load[None]), 12, 4, 2, 4)[0])
        assert bound <= exact.max_gpu_load + 1e-9
        assert _max_gpu_load(BUILT_IN["deepseek_baseline"], load, 12, 4, 2, 4) >= exact.max_gpu_load - 1e-9
        # Group-preservation can only cost: the free optimum is no worse.
        assert solve_layer(load, 12, 4).max_gpu_load <= exact.max_gpu_load + 1e-9


@pytest.mark.parametrize("case", list(_random_cases(12, seed=11, skew=2.5)),
                         ids=lambda c: f"E{len(c[0])}-P{c[1]}-G{c[2]}")
def test_free_bound_never_exceeds_the_exact_optimum_without_a_group_constraint(case):
    # Heavy skew: a few experts carry most of the load, where the pair term is what binds.
    load, num_replicas, num_gpus = case
    exact = solve_layer(load, num_replicas, num_gpus)
    assert exact.optimal
    weight = torch.from_numpy(load[None])
    bound = float(max_gpu_load_lower_bound(weight, num_replicas, num_gpus)[0])
    assert bound <= exact.max_gpu_load * (1 + 1e-9)


def test_splitting_groups_beats_the_grouped_bound_but_never_the_free_one():
    # Two hot experts in one group: kept whole, their node carries both.
    load = np.array([100.0, 100.0, 1.0, 1.0])  # groups (0, 1) and (2, 3); 2 nodes of 1 GPU, 2 slots each
    weight = torch.from_numpy(load[None])
    grouped = float(grouped_max_gpu_load_lower_bound(weight, 4, 2, 2, 2)[0])
    free = float(max_gpu_load_lower_bound(weight, 4, 2)[0])
    split = solve_layer(load, 4, 2)
    whole = solve_layer(load, 4, 2, num_groups=2, num_nodes=2, groups_on_nodes=True)
    assert (split.max_gpu_load, whole.max_gpu_load) == (pytest.approx(101), pytest.approx(200))
    assert free <= split.max_gpu_load + 1e-9 < grouped <= whole.max_gpu_load + 1e-9


def test_pair_term_is_tight_where_the_replica_and_mean_terms_are_not():
    tighter = 0
    for load, num_replicas, num_gpus in _random_cases(12, seed=11, skew=2.5):
        weight = torch.from_numpy(load[None])
        simple = max(load.sum() / num_gpus, float(min_max_replica_load(weight, num_replicas)[0]))
        tighter += float(max_gpu_load_lower_bound(weight, num_replicas, num_gpus)[0]) > simple * (1 + 1e-6)
    assert tighter >= 1
