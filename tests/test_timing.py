"""Timing: unmemoisable inputs, summaries, no page faults a serving process would not have, the context shown,
the sandbox's round trip left out."""

import sys
import textwrap

import numpy as np
import pytest
import torch

from evaluator.presets import get_preset
from evaluator.scoring import time_case
from evaluator.suites import Case
from evaluator.timing import TimingStats, timing_windows
from evaluator.validation import validate_on
from harness import sandbox
from harness.candidate import Candidate, baseline, load_module, rebalance_function
from harness.runner import time_task
from harness.transport import probe_source, transport_floor

# Allocates 2.5 MiB, touches it and frees it each call, like a policy's scratch arrays, and
# reports the page faults per call (after 3 warm-up calls) as its error on call 23.
_CHURN = textwrap.dedent("""
    import resource
    import types
    import numpy as np
    from harness.policy import compose_rebalance
    CALLS = []

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
        a, b, c = np.ones(1 << 17), np.ones(1 << 17), np.ones(1 << 16)
        a.sum() + b.sum() + c.sum()
        CALLS.append(faults())
        if len(CALLS) == 23:
            raise RuntimeError(f"faults per call {(CALLS[-1] - CALLS[2]) / 20}")
        return compose_rebalance(types.SimpleNamespace(**globals()))(weight, num_replicas, num_groups, num_nodes,
                                                                     num_gpus)
""")


def _faults_per_call(warm: bool) -> float:
    source = baseline().source + _CHURN
    if not warm:  # the worker's allocator warm-up undone: glibc's default thresholds again
        reset = "import ctypes\nctypes.CDLL(None).mallopt(-1, 128 * 1024)\nctypes.CDLL(None).mallopt(-3, 128 * 1024)\n"
        source = reset + source
    weight = np.ones((2, 8), dtype=np.int64)
    with sandbox.Worker(sandbox.Limits(timeout_s=60)) as worker:
        worker.load("churn", source)
        with pytest.raises(sandbox.TaskFailure) as failure:
            for _ in range(23):
                worker.call(weight, (8, 1, 1, 2))
    return float(str(failure.value).split("faults per call ")[1].split()[0])


def test_timing_stats_summarise_the_samples():
    stats = TimingStats.from_samples([3.0, 1.0, 2.0, 4.0, 5.0], warmup=2)
    assert (stats.median_s, stats.min_s, stats.max_s, stats.repeats, stats.warmup) == (3.0, 1.0, 5.0, 5, 2)
    assert stats.iqr_s > 0
    with pytest.raises(ValueError, match="no timed call"):
        TimingStats.from_samples([], warmup=1)


def test_timing_windows_are_distinct_renamed_copies_of_the_case_windows():
    history = np.random.default_rng(0).integers(0, 50, size=(2, 3, 8))
    inputs = timing_windows(history, 9, np.random.default_rng(1), num_groups=2)
    assert len({w.tobytes() for w, _ in inputs}) == 9
    for i, (w, perm) in enumerate(inputs):
        assert w.dtype == history.dtype and not np.shares_memory(w, history)
        # a renaming that keeps the two groups of 4 experts whole
        assert (np.sort(perm, axis=1) == np.arange(8)).all()
        assert (np.sort(perm.reshape(3, 2, 4) // 4, axis=2) == perm.reshape(3, 2, 4)[:, :, :1] // 4).all()
        added = w - np.take_along_axis(history[i % 2], perm, axis=1)
        assert np.all((added >= 0) & (added <= 1))
    floats = timing_windows(history.astype(float), 4, np.random.default_rng(1))
    assert len({w.tobytes() for w, _ in floats}) == 4


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and ru_minflt")
def test_worker_calls_do_not_fault_in_again_the_memory_each_call_frees():
    # With glibc's default thresholds every call faults its 2.5 MiB in again (about 600 faults here).
    assert _faults_per_call(warm=False) > 300
    # The worker warms the allocator first, as a long-running serving process has it.
    assert _faults_per_call(warm=True) < 30


def test_worker_starts_when_the_memory_limit_refuses_the_allocator_warm_up():
    # 4 MiB of headroom, as a worker might get with a small --memory-mb: too little for the 16 MiB block.
    with sandbox.Worker(sandbox.Limits(timeout_s=60, memory_mb=4)) as worker:
        worker.load("baseline", baseline().source)


# Reports what it was shown in its phy2log (the harness reads it back unvalidated from Worker.call).
_SHOWN = textwrap.dedent("""
    import torch
    def balanced_packing(weight, num_packs):
        raise NotImplementedError
    def replicate_experts(weight, num_phy):
        raise NotImplementedError
    def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus, load_history=None):
        shown = [-1, -1] if load_history is None else [load_history.shape[0], int(load_history.sum())]
        return torch.tensor([shown]), torch.zeros(1, 1, 1), torch.ones(1, 1)
""")


def test_load_history_crosses_the_boundary_only_to_a_policy_that_takes_it():
    weight, history = np.ones((2, 8), dtype=np.int64), np.full((3, 2, 8), 5, dtype=np.int64)
    with sandbox.Worker(sandbox.Limits(timeout_s=60)) as worker:
        worker.load("forecast", _SHOWN)
        assert worker.context == {"load_history"}
        (phy2log, _, _), _ = worker.call(weight, (8, 1, 1, 2), history=history)
        assert phy2log.tolist() == [[3, 240]]
        (phy2log, _, _), _ = worker.call(weight, (8, 1, 1, 2), history=history[:0])
        assert phy2log.tolist() == [[0, 0]]
    with sandbox.Worker(sandbox.Limits(timeout_s=60)) as worker:
        worker.load("stateless", baseline().source)
        assert worker.context == set()  # neither the history nor the placement in force is sent


def test_timed_calls_get_the_windows_before_theirs_renamed_as_their_own():
    preset = get_preset("mixtral-8x7b")
    base = np.random.default_rng(3).integers(10, 1000, (preset.num_layers, preset.num_experts))
    history = np.stack([base * 10 * (t + 1) for t in range(3)])  # window t is (t + 1) x window 0
    policy = rebalance_function(load_module(baseline()))
    calls = []

    def timed(weight, *shape, previous_phy2log=None, load_history=None):
        calls.append((weight.numpy(), load_history.numpy()))
        return policy(weight, *shape), 0.001

    time_case(timed, history, preset, repeats=5, warmup=1)
    for i, (weight, past) in enumerate(calls):
        assert len(past) == i % 3
        for j, window in enumerate(past):  # the same renaming: equal up to the call's 0/1 jitter
            assert np.abs(weight / (i % 3 + 1) - window / (j + 1)).max() <= 1


@pytest.mark.parametrize("preset_name,spec", [
    ("deepseek-v3", None), ("deepseek-v3", "slots=288,gpus=32,nodes=4,group_local=required"), ("mixtral-8x7b", None),
    ("deepseek-v3", "slots=320,gpus=32,nodes=8,group_local=required"), ("kimi-k2", None)])
@pytest.mark.parametrize("context", [set(), {"load_history"}, {"previous_phy2log", "load_history"}])
def test_transport_probe_answers_a_valid_placement_shaped_and_typed_as_the_candidates(preset_name, spec, context):
    from evaluator.deployment import Deployment

    preset = get_preset(preset_name)
    preset = preset.deployed(Deployment.parse(spec)) if spec else preset
    L, E, P = preset.num_layers, preset.num_experts, preset.num_replicas
    width = P - E + 1
    outputs = (torch.zeros((L, P), dtype=torch.int32), torch.zeros((L, E, width), dtype=torch.int64),
               torch.zeros((L, E), dtype=torch.int16))
    probe = Candidate("probe", probe_source(outputs, context))
    policy = rebalance_function(load_module(probe))
    assert set(policy.accepted) == context  # the same inputs cross as for the candidate
    answer = policy(torch.ones((L, E), dtype=torch.int64), *preset.rebalance_args())
    validate_on(answer, preset)
    assert [(tuple(a.shape), a.dtype) for a in answer] == [(tuple(o.shape), o.dtype) for o in outputs]


_SLEEPS = textwrap.dedent("""
    import time
    _respond = rebalance_experts

    def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
        time.sleep(0.02)
        return _respond(weight, num_replicas, num_groups, num_nodes, num_gpus)
""")


def test_a_timed_call_counts_the_policy_alone_net_of_the_sandbox_round_trip():
    preset = get_preset("deepseek-v3")
    L, E, P = preset.num_layers, preset.num_experts, preset.num_replicas
    outputs = (torch.zeros((L, P), dtype=torch.int64), torch.zeros((L, E, P - E + 1), dtype=torch.int64),
               torch.zeros((L, E), dtype=torch.int64))
    # A fixed answer of the baseline's shapes (4 MB) after a 20 ms sleep: its cost is the sleep.
    sleeps = Candidate("sleeps", probe_source(outputs, set()) + _SLEEPS)
    outcome = sandbox.run_task(time_task, (sleeps, Case("zipf", preset.name, 0, windows=2), 5, 1, 7))
    stats = outcome.value
    assert 0 < stats["transport_s"] < 0.01  # the probe's round trip, in a worker of its own
    assert stats["median_s"] == pytest.approx(stats["measured_median_s"] - stats["transport_s"])
    assert 0.02 <= stats["median_s"] < 0.0215 and stats["transport_s"] > 0.0002


def test_the_transport_floor_is_measured_whatever_dtypes_the_candidate_answers_in():
    preset = get_preset("mixtral-8x7b")
    L, E, P = preset.num_layers, preset.num_experts, preset.num_replicas
    # uint8 cannot hold the probe's -1 padding: it answers in int64 instead of failing the run.
    outputs = (torch.zeros((L, P), dtype=torch.uint8), torch.zeros((L, E, P - E + 1), dtype=torch.uint8),
               torch.zeros((L, E), dtype=torch.uint8))
    history = Case("zipf", preset.name, 0, windows=2).history()
    floor = transport_floor(outputs, set(), history, preset, 3, 1, 0, sandbox.Limits(timeout_s=60))
    assert 0 < floor["median_s"] < 0.01
