"""The baseline on small examples computed by hand."""

import torch

from evaluator.metrics import gpu_loads
from evaluator.validation import validate_placement


def test_global_policy_matches_hand_computed_placement(baseline_rebalance):
    # Replication: 20 -> 10 (e0 gets slot 5), then max(10, 9, 4, 2) -> e0 again (6.67 each).
    # Packing 9, 6.67, 6.67, 6.67, 4, 2 onto 2 GPUs of 3 slots, heaviest to lightest open GPU:
    # GPU0 = {9, 6.67, 2} = 17.67 and GPU1 = {6.67, 6.67, 4} = 17.33.
    weight = torch.tensor([[20, 9, 4, 2]])
    phy2log, log2phy, logcnt = baseline_rebalance(weight, 6, 1, 1, 2)
    validate_placement((phy2log, log2phy, logcnt), 1, 4, 6, 2)
    assert logcnt.tolist() == [[3, 1, 1, 1]]
    assert sorted(phy2log[0, :3].tolist()) == [0, 1, 3]
    assert sorted(phy2log[0, 3:].tolist()) == [0, 0, 2]
    loads = gpu_loads(weight, phy2log, logcnt, 2)
    assert torch.allclose(loads, torch.tensor([[9 + 20 / 3 + 2, 2 * 20 / 3 + 4]], dtype=torch.float64))


def test_hierarchical_policy_keeps_groups_on_nodes(baseline_rebalance):
    # Groups {e0, e1} = 9 and {e2, e3} = 10, one per node; each node makes one extra
    # replica of its heaviest expert: node 0 {e0, e1, e0}, node 1 {e2, e3, e2}.
    weight = torch.tensor([[8, 1, 6, 4]])
    phy2log, log2phy, logcnt = baseline_rebalance(weight, 6, 2, 2, 2)
    validate_placement((phy2log, log2phy, logcnt), 1, 4, 6, 2)
    assert logcnt.tolist() == [[2, 1, 2, 1]]
    nodes = {tuple(sorted(phy2log[0, :3].tolist())), tuple(sorted(phy2log[0, 3:].tolist()))}
    assert nodes == {(0, 0, 1), (2, 2, 3)}


def test_packing_sends_heaviest_item_to_lightest_open_pack():
    from harness.candidate import baseline, load_module

    module = load_module(baseline())
    weight = torch.tensor([[5.0, 4.0, 3.0, 3.0, 2.0, 1.0]])
    pack, rank = module.balanced_packing(weight, 2)
    # 5 -> p0; 4 -> p1; 3 -> p1 (7); 3 -> p0 (8); 2 -> p1 (9, full); 1 -> p0 (9).
    assert pack.tolist() == [[0, 1, 1, 0, 1, 0]]
    assert rank.tolist() == [[0, 0, 1, 1, 2, 2]]


def test_replication_gives_each_extra_slot_to_largest_load_per_replica():
    from harness.candidate import baseline, load_module

    module = load_module(baseline())
    phy2log, rank, logcnt = module.replicate_experts(torch.tensor([[10.0, 6.0, 1.0]]), 6)
    # 10 -> 5 (e0), then max(5, 6, 1) -> e1 (3), then max(5, 3, 1) -> e0 (3.33).
    assert phy2log.tolist() == [[0, 1, 2, 0, 1, 0]]
    assert rank.tolist() == [[0, 0, 0, 1, 1, 2]]
    assert logcnt.tolist() == [[3, 2, 1]]
