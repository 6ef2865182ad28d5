"""DeepSeek's EPLB policy structure, composed from a candidate's two primitives.

A candidate supplies ``balanced_packing`` and ``replicate_experts`` (and optionally
``balanced_packing_diverse``); :func:`compose_rebalance` turns them into the full
``rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus)``:

* hierarchical, when ``num_groups % num_nodes == 0``: pack expert groups onto nodes,
  replicate experts inside each node, pack each node's replicas onto its GPUs;
* global otherwise, or when the module sets ``GROUP_LOCAL = 0`` (groups free): the same
  with one group and one node, so replication and packing see every expert and every
  GPU at once.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import torch

RebalanceFn = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def inverse_permutation(perm: torch.Tensor) -> torch.Tensor:
    """Row-wise inverse of ``perm`` ``[X, n]``: ``out[x, perm[x, i]] = i``."""
    inv = torch.empty_like(perm)
    positions = torch.arange(perm.size(1), dtype=torch.int64).expand(perm.shape)
    inv.scatter_(1, perm, positions)
    return inv


def build_log2phy(phy2log: torch.Tensor, replica_rank: torch.Tensor, num_logical: int) -> torch.Tensor:
    """Inverse map ``log2phy [L, E, max_replicas]`` padded with -1.

    ``replica_rank [L, P]`` gives each slot's position among its expert's replicas;
    the width is the largest replica count in any layer.
    """
    num_layers, num_phy = phy2log.shape
    width = int(replica_rank.max()) + 1 if num_phy else 1
    log2phy = torch.full((num_layers, num_logical * width), -1, dtype=torch.int64)
    slots = torch.arange(num_phy, dtype=torch.int64).expand(num_layers, num_phy)
    log2phy.scatter_(1, phy2log * width + replica_rank, slots)
    return log2phy.view(num_layers, num_logical, width)


def _hierarchical(
    module: ModuleType,
    weight: torch.Tensor,
    num_phy: int,
    num_groups: int,
    num_nodes: int,
    num_gpus: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns ``phy2log [L, P]``, ``replica_rank [L, P]``, ``logcnt [L, E]``."""
    num_layers, num_log = weight.shape
    if num_log % num_groups or num_groups % num_nodes or num_gpus % num_nodes or num_phy % num_gpus:
        raise ValueError(
            f"shape does not divide: {num_log} experts, {num_groups} groups, "
            f"{num_nodes} nodes, {num_gpus} GPUs, {num_phy} slots"
        )
    group_size = num_log // num_groups
    groups_per_node = num_groups // num_nodes
    log_per_node = num_log // num_nodes
    phy_per_node = num_phy // num_nodes
    slots_per_gpu = num_phy // num_gpus

    # 1. Expert groups onto nodes. "mlog" numbers experts node by node.
    group_load = weight.unflatten(-1, (num_groups, group_size)).sum(-1)
    group_pack, group_rank = module.balanced_packing(group_load, num_nodes)
    group_start = (group_pack * groups_per_node + group_rank) * group_size
    log2mlog = (group_start.unsqueeze(-1) + torch.arange(group_size)).flatten(-2)
    mlog2log = inverse_permutation(log2mlog)

    # 2. Replicas inside each node (one row per (layer, node)).
    mlog_load = weight.gather(-1, mlog2log).view(-1, log_per_node)
    phy2mlog, phy_rank, mlogcnt = module.replicate_experts(mlog_load, phy_per_node)

    # 3. Each node's replicas onto its GPUs.
    replica_load = (mlog_load / mlogcnt).gather(-1, phy2mlog)
    gpus_per_node = num_gpus // num_nodes
    if hasattr(module, "balanced_packing_diverse"):
        gpu_pack, gpu_rank = module.balanced_packing_diverse(replica_load, phy2mlog, gpus_per_node)
    else:
        gpu_pack, gpu_rank = module.balanced_packing(replica_load, gpus_per_node)
    phy2pphy = gpu_pack * slots_per_gpu + gpu_rank
    pphy2phy = inverse_permutation(phy2pphy)

    pphy2mlog = phy2mlog.gather(-1, pphy2phy)
    node_offset = torch.arange(0, num_log, log_per_node).view(1, -1, 1)
    pphy2mlog = (pphy2mlog.view(num_layers, num_nodes, -1) + node_offset).flatten(-2)
    phy2log = mlog2log.gather(-1, pphy2mlog)
    replica_rank = phy_rank.gather(-1, pphy2phy).view(num_layers, -1)
    logcnt = mlogcnt.view(num_layers, -1).gather(-1, log2mlog)
    return phy2log, replica_rank, logcnt


def compose_rebalance(module: ModuleType) -> RebalanceFn:
    """The full policy built from ``module``'s primitives.

    The returned function takes ``weight [L, E]`` and the deployment shape and
    returns ``phy2log [L, P]``, ``log2phy [L, E, max_replicas]`` (-1 padded) and
    ``logcnt [L, E]``.
    """

    def rebalance_experts(
        weight: torch.Tensor, num_replicas: int, num_groups: int, num_nodes: int, num_gpus: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        weight = weight.float().cpu()
        if num_groups % num_nodes == 0 and getattr(module, "GROUP_LOCAL", 1):
            shape = (num_groups, num_nodes)
        else:
            shape = (1, 1)
        phy2log, replica_rank, logcnt = _hierarchical(
            module, weight, num_replicas, *shape, num_gpus
        )
        return phy2log, build_log2phy(phy2log, replica_rank, weight.shape[1]), logcnt

    return rebalance_experts
