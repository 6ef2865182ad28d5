"""Load balance and locality of a validated placement under a load matrix.

All balancedness figures have the same form, sum over layers of the mean load
divided by sum over layers of the max load, at three levels: GPU (what sets a
step's latency), node, and replica slot (the older figure of published EPLB
benchmarks, kept as a compatibility column). Locality is ``group_node_spread``:
how many nodes an expert group's replicas occupy, 1.0 when groups stay whole.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from evaluator.bounds import grouped_max_gpu_load_lower_bound, max_gpu_load_lower_bound
from evaluator.validation import group_presence


def slot_loads(load: torch.Tensor, phy2log: torch.Tensor, logcnt: torch.Tensor) -> torch.Tensor:
    """``[L, P]`` load of each slot: its expert's load split evenly over the expert's replicas.

    Args:
        load: ``[L, E]`` token counts.
        phy2log: ``[L, P]`` expert held by each slot.
        logcnt: ``[L, E]`` replicas per expert.
    """
    per_replica = load.double() / logcnt.double()
    return per_replica.gather(1, phy2log)


def gpu_loads(load: torch.Tensor, phy2log: torch.Tensor, logcnt: torch.Tensor, num_gpus: int) -> torch.Tensor:
    """``[L, G]`` load of each GPU; GPU g holds slots ``g*P/G .. (g+1)*P/G - 1``."""
    slots = slot_loads(load, phy2log, logcnt)
    return slots.view(slots.shape[0], num_gpus, -1).sum(-1)


def node_loads(gpu_load: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """``[L, N]`` load of each node from ``gpu_load [L, G]``; consecutive GPUs share a node."""
    return gpu_load.view(gpu_load.shape[0], num_nodes, -1).sum(-1)


def balancedness(loads: torch.Tensor) -> float:
    """Sum over layers of mean load / sum over layers of max load, for ``loads [L, K]``.

    1.0 is perfect balance; an all-zero load counts as balanced.
    """
    total_max = float(loads.max(dim=1).values.sum())
    return float(loads.mean(dim=1).sum()) / total_max if total_max > 0 else 1.0


def per_layer_balancedness(loads: torch.Tensor) -> torch.Tensor:
    """``[L]`` mean / max load of each layer (1.0 for an idle layer)."""
    peak = loads.max(dim=1).values
    return torch.where(peak > 0, loads.mean(dim=1) / peak.clamp_min(1e-300), torch.ones_like(peak))


def duplicate_replicas(phy2log: torch.Tensor, num_gpus: int) -> tuple[int, float]:
    """Replicas that share a GPU with another replica of their expert.

    Returns the count of such extra replicas and the share of (layer, GPU) pairs
    that hold at least one.
    """
    L, P = phy2log.shape
    per_gpu = phy2log.view(L, num_gpus, P // num_gpus).sort(dim=-1).values
    repeats = per_gpu[..., 1:] == per_gpu[..., :-1]
    return int(repeats.sum()), float(repeats.any(dim=-1).double().mean())


def group_node_spread(phy2log: torch.Tensor, num_experts: int, num_groups: int, num_nodes: int) -> float | None:
    """Mean over (layer, group) of the number of nodes holding a replica of one of the group's experts.

    ``phy2log [L, P]``; node n holds slots ``n*P/N .. (n+1)*P/N - 1``. 1.0 when every group
    stays on one node (DeepSeek's hierarchical rule); up to ``min(N, experts per group x
    replicas)`` when groups are spread. None for a model without expert groups (one group
    of every expert: nothing to keep together).
    """
    if num_groups == 1:
        return None
    present = group_presence(phy2log, num_experts, num_groups, num_nodes)
    return float(present.sum(dim=-1).double().mean())


def _balancedness_bound(mean_total: float, lower: torch.Tensor) -> float:
    total = float(lower.sum())
    return mean_total / total if total > 0 else 1.0


@dataclass(frozen=True)
class Balance:
    """Balance figures of one placement on one load matrix (see module docstring)."""

    gpu_balancedness: float
    node_balancedness: float
    replica_balancedness: float
    gpu_balancedness_bound: float
    gap_to_bound: float
    grouped_bound: float
    gap_to_grouped_bound: float
    group_node_spread: float | None
    sum_max_gpu_load: float
    sum_mean_gpu_load: float
    duplicate_replicas: int
    duplicate_gpu_share: float

    def to_dict(self) -> dict:
        return asdict(self)


def placement_balance(
    load: torch.Tensor,
    phy2log: torch.Tensor,
    logcnt: torch.Tensor,
    num_groups: int,
    num_nodes: int,
    num_gpus: int,
    group_local: bool = False,
) -> Balance:
    """All balance figures of a validated placement.

    Args:
        load: ``[L, E]`` token counts the placement is scored on.
        phy2log: ``[L, P]``; logcnt: ``[L, E]`` (validated).
        num_groups, num_nodes, num_gpus: the deployment, for the node view and the bounds.
        group_local: the deployment requires groups whole on nodes, so the grouped bound
            holds for every accepted placement and is the bound ``gap_to_bound`` uses.

    ``gpu_balancedness_bound`` holds for every valid placement (see :mod:`evaluator.bounds`);
    ``grouped_bound`` only for group-local ones: a gap above 1 to it means groups were split.
    """
    gpu = gpu_loads(load, phy2log, logcnt, num_gpus)
    gpu_bal = balancedness(gpu)
    free = max_gpu_load_lower_bound(load, phy2log.shape[1], num_gpus)
    grouped = grouped_max_gpu_load_lower_bound(load, phy2log.shape[1], num_groups, num_nodes, num_gpus, free)
    mean_total = float(gpu.mean(dim=1).sum())
    grouped_bound = _balancedness_bound(mean_total, grouped)
    bound = grouped_bound if group_local else _balancedness_bound(mean_total, free)
    dups, dup_share = duplicate_replicas(phy2log, num_gpus)
    return Balance(
        gpu_balancedness=gpu_bal,
        node_balancedness=balancedness(node_loads(gpu, num_nodes)),
        replica_balancedness=balancedness(slot_loads(load, phy2log, logcnt)),
        gpu_balancedness_bound=bound,
        gap_to_bound=gpu_bal / bound if bound > 0 else 1.0,
        grouped_bound=grouped_bound,
        gap_to_grouped_bound=gpu_bal / grouped_bound if grouped_bound > 0 else 1.0,
        group_node_spread=group_node_spread(phy2log, logcnt.shape[1], num_groups, num_nodes),
        sum_max_gpu_load=float(gpu.max(dim=1).values.sum()),
        sum_mean_gpu_load=mean_total,
        duplicate_replicas=dups,
        duplicate_gpu_share=dup_share,
    )
