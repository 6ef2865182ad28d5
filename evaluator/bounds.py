"""Lower bounds on the max GPU load (hence upper bounds on balancedness).

:func:`max_gpu_load_lower_bound` holds for **every placement the validator accepts**:
any replica counts (each >= 1, sum P), any slot for any replica, groups split or not.
Per layer the max GPU load ``M`` is at least

* the mean GPU load (total / G);
* the least possible max load of one replica, ``min over counts c of max_e load_e / c_e``
  (the heaviest GPU holds the heaviest replica; greedy replication attains it);
* the **pair term**: a replica heavier than ``M / 2`` cannot share a GPU with another
  one, so at most G replicas are heavier than ``M / 2``. The least ``M`` for which some
  counts keep every replica under ``M``, use at most P slots and leave at most G replicas
  above ``M / 2`` is found by bisection; each test is a knapsack over the experts that
  could stay heavy (at most 2G per layer). It matters when a few experts carry most of
  the load (the real Switch-128 trace), where the first two terms are far apart from
  what any placement reaches.

:func:`grouped_max_gpu_load_lower_bound` adds the term that holds only for
**group-local** placements (DeepSeek's hierarchical rule, or a deployment with
``group_local=required``: every expert group's replicas on one node, ``num_groups / N``
groups per node): the least possible max node load over partitions of groups into nodes,
divided by the GPUs per node. Exact (enumerated) when the partitions are few, else the
relaxation ``max(total / N, heaviest group + lightest (m - 1) groups)``. A placement that
splits groups can beat it; it is reported as its own figure for that reason.
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import combinations

import numpy as np
import torch

MAX_ENUMERATED_PARTITIONS = 20_000
_BISECTION_STEPS = 40


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


def _pair_feasible(load: np.ndarray, limit: np.ndarray, num_replicas: int, num_gpus: int) -> np.ndarray:
    """``[L]`` whether some counts keep every replica <= ``limit`` with at most ``num_gpus`` above half of it.

    ``load [L, E]``, ``limit [L]`` (at least each layer's mean GPU load). An expert either
    stays heavy with the fewest copies under the limit (``a``; those copies count against
    the GPUs) or takes the fewest copies under half the limit (``b >= a`` slots); which
    experts stay heavy is a 0/1 knapsack: GPU capacity, slots saved ``b - a`` as value.
    """
    m = limit[:, None]
    a = np.maximum(1, np.ceil(load / m - 1e-12))
    b = np.maximum(1, np.ceil(2 * load / m - 1e-12))
    heavy = b > a  # only these choose; the others are light at their fewest copies
    width = int(heavy.sum(axis=1).max(initial=0))
    spare = num_replicas - b.sum(axis=1)  # slots left when every expert is made light
    if width == 0:
        return spare >= 0
    # The choosing experts of each layer, padded with items that cannot fit.
    order = np.argsort(~heavy, axis=1, kind="stable")[:, :width]
    chosen = np.take_along_axis(heavy, order, axis=1)
    weight = np.where(chosen, np.take_along_axis(a, order, axis=1), num_gpus + 1).astype(np.int64)
    value = np.where(chosen, np.take_along_axis(b - a, order, axis=1), 0.0)
    rows = np.arange(len(load))[:, None]
    best = np.zeros((len(load), num_gpus + 1))  # best[l, k]: most slots saved using k GPUs
    capacity = np.arange(num_gpus + 1)[None, :]
    for i in range(width):
        w = weight[:, i : i + 1]
        source = capacity - w
        taken = np.where(source >= 0, best[rows, np.maximum(source, 0)] + value[:, i : i + 1], -np.inf)
        best = np.maximum(best, taken)
    return spare + best.max(axis=1) >= 0


def pair_bound(load: torch.Tensor, num_replicas: int, num_gpus: int, start: torch.Tensor) -> torch.Tensor:
    """``[L]`` least max GPU load passing the pair test, at least ``start [L]`` (a valid bound itself)."""
    w = load.double().numpy()
    low = start.double().numpy().copy()
    feasible = _pair_feasible(w, low, num_replicas, num_gpus)
    if feasible.all():
        return start.double()
    # At twice a bound every replica can be made light (the replica term's counts), so it passes.
    high = np.where(feasible, low, 2 * low)
    for _ in range(_BISECTION_STEPS):
        mid = (low + high) / 2
        ok = _pair_feasible(w, mid, num_replicas, num_gpus) | feasible
        low = np.where(ok, low, mid)  # an M that fails is below every placement's max load
        high = np.where(ok, mid, high)
    return torch.from_numpy(np.where(feasible, start.double().numpy(), low))


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


def max_gpu_load_lower_bound(load: torch.Tensor, num_replicas: int, num_gpus: int) -> torch.Tensor:
    """``[L]`` lower bound on each layer's max GPU load, for ``load [L, E]``, valid for any placement."""
    load = load.double()
    start = torch.maximum(load.sum(dim=1) / num_gpus, min_max_replica_load(load, num_replicas))
    return pair_bound(load, num_replicas, num_gpus, start)


def grouped_max_gpu_load_lower_bound(
    load: torch.Tensor, num_replicas: int, num_groups: int, num_nodes: int, num_gpus: int,
    free: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[L]`` lower bound for group-local placements: the free bound (``free``, computed if None) and the node term.

    Equal to the free bound when groups cannot be kept whole on nodes (``num_groups % num_nodes``)
    or there is one node.
    """
    bound = max_gpu_load_lower_bound(load, num_replicas, num_gpus) if free is None else free
    if num_groups % num_nodes == 0 and num_nodes > 1:
        group_load = load.double().view(load.shape[0], num_groups, -1).sum(dim=-1)
        node_bound = min_max_node_load(group_load, num_nodes) / (num_gpus // num_nodes)
        bound = torch.maximum(bound, node_bound)
    return bound
