"""DeepSeek's open-source EPLB greedy, written out plainly as the reference policy.

Two primitives, composed by the harness into DeepSeek's policy (see
``harness/policy.py``): hierarchical when ``num_groups % num_nodes == 0`` (expert
groups packed onto nodes, replicas made inside each node, replicas packed onto
the node's GPUs), global otherwise (one node holding everything).

This module is the yardstick every other candidate is compared with, so it stays
faithful to the original algorithm, Python loops and all: do not optimise it.
"""

import torch


def balanced_packing(weight: torch.Tensor, num_packs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy capacity-limited packing: heaviest item to the lightest pack with room.

    Args:
        weight: ``[X, n]`` item weights, one packing problem per row.
        num_packs: number of packs; ``n`` must be a multiple of it.

    Returns:
        pack_index: ``[X, n]`` int64, the pack of each item.
        rank_in_pack: ``[X, n]`` int64, the item's position inside its pack.
    """
    num_rows, num_items = weight.shape
    assert num_items % num_packs == 0
    capacity = num_items // num_packs

    if capacity == 1:
        pack_index = torch.arange(num_items, dtype=torch.int64).expand(num_rows, num_items)
        return pack_index, torch.zeros(num_rows, num_items, dtype=torch.int64)

    order = weight.float().sort(dim=-1, descending=True).indices
    pack_index = torch.full((num_rows, num_items), -1, dtype=torch.int64)
    rank_in_pack = torch.full((num_rows, num_items), -1, dtype=torch.int64)
    for row in range(num_rows):
        pack_load = [0.0] * num_packs
        pack_size = [0] * num_packs
        for item in order[row].tolist():
            open_packs = (p for p in range(num_packs) if pack_size[p] < capacity)
            pack = min(open_packs, key=pack_load.__getitem__)
            pack_index[row, item] = pack
            rank_in_pack[row, item] = pack_size[pack]
            pack_load[pack] += float(weight[row, item])
            pack_size[pack] += 1
    return pack_index, rank_in_pack


def replicate_experts(
    weight: torch.Tensor, num_phy: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Greedy replication: each extra slot goes to the expert with the largest load per replica.

    Args:
        weight: ``[X, num_log]`` load of each logical expert.
        num_phy: number of physical slots, ``>= num_log``.

    Returns:
        phy2log: ``[X, num_phy]`` int64, logical expert held by each slot.
        rank: ``[X, num_phy]`` int64, replica index of the slot among its expert's replicas.
        logcnt: ``[X, num_log]`` int64, number of replicas of each expert.
    """
    num_rows, num_log = weight.shape
    assert num_phy >= num_log
    rows = torch.arange(num_rows)
    # The first num_log slots hold one replica of every expert, in order.
    phy2log = torch.arange(num_phy, dtype=torch.int64).repeat(num_rows, 1)
    rank = torch.zeros(num_rows, num_phy, dtype=torch.int64)
    logcnt = torch.ones(num_rows, num_log, dtype=torch.int64)
    for slot in range(num_log, num_phy):
        expert = (weight / logcnt).max(dim=-1).indices
        phy2log[:, slot] = expert
        rank[:, slot] = logcnt[rows, expert]
        logcnt[rows, expert] += 1
    return phy2log, rank, logcnt
