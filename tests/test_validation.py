"""Every kind of invalid placement is rejected with its reason."""

import pytest
import torch

from evaluator.validation import InvalidPlacement, validate_placement

L, E, P, G = 2, 4, 8, 2


@pytest.fixture
def valid(baseline_rebalance):
    weight = torch.tensor([[9, 5, 3, 1], [1, 2, 3, 4]])
    return tuple(t.clone() for t in baseline_rebalance(weight, P, 1, 1, G))


def check(output, match):
    with pytest.raises(InvalidPlacement, match=match):
        validate_placement(output, L, E, P, G)


def test_valid_output_passes(valid):
    phy2log, log2phy, logcnt = validate_placement(valid, L, E, P, G)
    assert phy2log.dtype == torch.int64 and logcnt.sum(dim=1).tolist() == [P, P]


def test_not_a_triple(valid):
    check(valid[:2], "must return")
    check(None, "must return")


def test_not_a_tensor(valid):
    check((valid[0].tolist(), valid[1], valid[2]), "phy2log is a list")


def test_wrong_dtype(valid):
    check((valid[0].float(), valid[1], valid[2]), "dtype torch.float32")


def test_wrong_shape(valid):
    check((valid[0][:, :-1], valid[1], valid[2]), r"shape \[2, 7\], expected \[2, 8\]")
    check((valid[0], valid[1], valid[2][0]), "logcnt has shape")


def test_gpu_without_equal_share(valid):
    with pytest.raises(InvalidPlacement, match="equal shares"):
        validate_placement(valid, L, E, P, 3)


def test_expert_id_out_of_range(valid):
    phy2log = valid[0].clone()
    phy2log[1, 3] = E
    check((phy2log, valid[1], valid[2]), r"phy2log\[1, 3\] = 4 is not an expert id")


def test_expert_without_replica(valid):
    phy2log = valid[0].clone()
    phy2log[0][phy2log[0] == 3] = 0
    check((phy2log, valid[1], valid[2]), "expert 3 has no replica in layer 0")


def test_logcnt_disagrees_with_phy2log(valid):
    logcnt = valid[2].clone()
    logcnt[0, 0] += 1
    check((valid[0], valid[1], logcnt), r"logcnt\[0, 0\]")


def test_log2phy_points_at_wrong_expert(valid):
    phy2log, log2phy, logcnt = valid
    log2phy = log2phy.clone()
    log2phy[0, 0, 0], log2phy[0, 1, 0] = log2phy[0, 1, 0].clone(), log2phy[0, 0, 0].clone()
    check((phy2log, log2phy, logcnt), "which phy2log gives to expert")


def test_log2phy_padding_must_be_minus_one(valid):
    phy2log, log2phy, logcnt = valid
    log2phy = log2phy.clone()
    expert = int(logcnt[1].argmin())
    log2phy[1, expert, -1] = 0
    check((phy2log, log2phy, logcnt), "should be -1 padding")


def test_log2phy_slot_out_of_range(valid):
    phy2log, log2phy, logcnt = valid
    log2phy = log2phy.clone()
    log2phy[0, 2, 0] = P
    check((phy2log, log2phy, logcnt), "is not a slot")


def test_log2phy_too_narrow(valid):
    phy2log, log2phy, logcnt = valid
    check((phy2log, log2phy[..., :1], logcnt), "columns but an expert has")
