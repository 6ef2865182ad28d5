"""Lower bounds on the max GPU load any placement can reach (hence upper bounds on balancedness).

Per layer the max GPU load is at least

* the mean GPU load (total / G);
* the least possible max load of one replica, ``min over counts c (sum c = P,
  c >= 1) of max_e load_e / c_e``: the heaviest GPU holds the heaviest replica.
  Greedy replication attains this minimum exactly;
* in hierarchical mode (``num_groups % num_nodes == 0``), where whole expert groups
  go to nodes and replicas stay inside their node: the least possible max node
  load over partitions of groups into nodes of equal group count, divided by the
  GPUs per node. It is exact (enumerated) when the partitions are few, else the
  relaxation ``max(total / N, heaviest group + lightest (m - 1) groups)``.

The grouped term assumes group-preserving placements (the DeepSeek policy and
every candidate built from primitives); a candidate with its own
``rebalance_experts`` that splits groups across nodes can exceed it.
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import combinations

import numpy as np
import torch

MAX_ENUMERATED_PARTITIONS = 20_000


def min_max_replica_load(load: torch.Tensor, num_replicas: int) -> torch.Tensor:
    """``[L]`` least possible max per-replica load for ``load [L, E]`` and ``num_replicas`` slots."""
    load = load.double()
    L, E = load.shape
    counts = torch.ones(L, E, dtype=torch.float64)
    rows = torch.arange(L)
    for _ in range(num_replicas - E):
        # Giving the slot to the current max is the only way to lower the max.
        expert = (load / counts).argmax(dim=1)
        counts[rows, expert] += 1
    return (load / counts).max(dim=1).values


def _count_equal_partitions(num_items: int, num_blocks: int) -> int:
    size = num_items // num_blocks
    return math.factorial(num_items) // (math.factorial(size) ** num_blocks * math.factorial(num_blocks))


@lru_cache(maxsize=16)
def _equal_partitions(num_items: int, num_blocks: int) -> np.ndarray:
    """``[K, num_blocks, size]`` every partition of ``range(num_items)`` into equal blocks."""
    size = num_items // num_blocks

    def split(items: tuple[int, ...]) -> list[list[tuple[int, ...]]]:
        if not items:
            return [[]]
        first, rest = items[0], items[1:]
        out = []
        for others in combinations(rest, size - 1):
            block = (first, *others)
            remaining = tuple(i for i in rest if i not in others)
            out.extend([block, *tail] for tail in split(remaining))
        return out

    return np.array(split(tuple(range(num_items))), dtype=np.int64)


def min_max_node_load(group_load: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """``[L]`` lower bound on the max node load when groups ``[L, num_groups]`` stay whole.

    Exact when the equal-size partitions are at most :data:`MAX_ENUMERATED_PARTITIONS`.
    """
    L, num_groups = group_load.shape
    group_load = group_load.double()
    if num_nodes == 1:
        return group_load.sum(dim=1)
    if _count_equal_partitions(num_groups, num_nodes) <= MAX_ENUMERATED_PARTITIONS:
        parts = torch.from_numpy(_equal_partitions(num_groups, num_nodes))
        node_load = group_load[:, parts].sum(dim=-1)  # [L, K, N]
        return node_load.max(dim=-1).values.min(dim=-1).values
    per_node = num_groups // num_nodes
    ordered = group_load.sort(dim=1).values
    heaviest_plus_lightest = ordered[:, -1] + ordered[:, : per_node - 1].sum(dim=1)
    return torch.maximum(group_load.sum(dim=1) / num_nodes, heaviest_plus_lightest)


def max_gpu_load_lower_bound(
    load: torch.Tensor, num_replicas: int, num_groups: int, num_nodes: int, num_gpus: int
) -> torch.Tensor:
    """``[L]`` lower bound on each layer's max GPU load for ``load [L, E]`` (see module docstring)."""
    load = load.double()
    bound = torch.maximum(load.sum(dim=1) / num_gpus, min_max_replica_load(load, num_replicas))
    if num_groups % num_nodes == 0 and num_nodes > 1:
        group_load = load.view(load.shape[0], num_groups, -1).sum(dim=-1)
        node_bound = min_max_node_load(group_load, num_nodes) / (num_gpus // num_nodes)
        bound = torch.maximum(bound, node_bound)
    return bound
