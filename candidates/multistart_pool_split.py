"""Multi-start LPT packing with pool-and-split refinement, and heap-based greedy replication.

The ideas of seed 004, written afresh:

* each row is packed ``RESTARTS`` times by LPT (heaviest item to the lightest pack with
  room): first in true weight order, then in orders perturbed by multiplicative noise
  of up to ``NOISE``; the packing with the lowest maximum wins;
* each packing is refined up to ``REFINE_ITERS`` times by pool-and-split: pool the
  items of the heaviest and the lightest pack, sort them, and deal them back into two
  packs by LPT; keep the result only if the pair's maximum drops;
* replication keeps a max-heap of load per replica and gives each extra slot to its top;
* a second copy of an expert on one GPU is swapped away when no load passes the peak.

Randomness comes from a generator seeded per row, so results are reproducible.
"""

import heapq
import random

import torch

RESTARTS = 4
REFINE_ITERS = 30
NOISE = 0.1
# 1: DeepSeek's rule, expert groups kept whole on nodes when num_groups % num_nodes == 0
# (the harness composes the hierarchical policy); 0: groups free, one global policy.
GROUP_LOCAL = 1
KNOBS = {
    "GROUP_LOCAL": ("int", 0, 1),
    "RESTARTS": ("int", 1, 16),
    "REFINE_ITERS": ("int", 0, 64),
    "NOISE": ("float", 0.0, 0.5),
}


def _lpt(weights: list[float], order: list[int], num_packs: int, capacity: int) -> tuple[list[list[int]], list[float]]:
    packs: list[list[int]] = [[] for _ in range(num_packs)]
    loads = [0.0] * num_packs
    for item in order:
        best = min((p for p in range(num_packs) if len(packs[p]) < capacity), key=loads.__getitem__)
        packs[best].append(item)
        loads[best] += weights[item]
    return packs, loads


def _pool_and_split(weights: list[float], packs: list[list[int]], loads: list[float], capacity: int) -> None:
    """In place: re-deal the heaviest and lightest packs' items while that lowers their maximum."""
    for _ in range(REFINE_ITERS):
        hi = max(range(len(loads)), key=loads.__getitem__)
        lo = min(range(len(loads)), key=loads.__getitem__)
        if hi == lo or loads[hi] - loads[lo] <= 1e-9 * max(loads[hi], 1.0):
            return
        pooled = sorted(packs[hi] + packs[lo], key=lambda i: -weights[i])
        (a, b), (load_a, load_b) = _lpt(weights, pooled, 2, capacity)
        if max(load_a, load_b) >= loads[hi] - 1e-9 * loads[hi]:
            return
        packs[hi], packs[lo], loads[hi], loads[lo] = a, b, load_a, load_b


def balanced_packing_diverse(
    weight: torch.Tensor, label: torch.Tensor, num_packs: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-start LPT + pool-and-split, then second copies of an expert moved off shared packs.

    ``weight, label [X, n]`` -> ``pack_index, rank_in_pack [X, n]``.
    """
    rows, n = weight.shape
    capacity = n // num_packs
    pack_index = torch.empty(rows, n, dtype=torch.int64)
    rank_in_pack = torch.empty(rows, n, dtype=torch.int64)
    for row, (weights, labels) in enumerate(zip(weight.double().tolist(), label.tolist(), strict=True)):
        rng = random.Random(row)
        base_order = sorted(range(n), key=lambda i: -weights[i])
        best_packs, best_loads = None, [float("inf")]
        for attempt in range(max(1, RESTARTS)):
            if attempt == 0:
                order = base_order
            else:
                noisy = [w * (1.0 + NOISE * (2.0 * rng.random() - 1.0)) for w in weights]
                order = sorted(range(n), key=lambda i: -noisy[i])
            packs, loads = _lpt(weights, order, num_packs, capacity)
            _pool_and_split(weights, packs, loads, capacity)
            if max(loads) < max(best_loads):
                best_packs, best_loads = packs, loads
        _move_second_copies(weights, labels, best_packs, best_loads)
        for p, members in enumerate(best_packs):
            for r, item in enumerate(members):
                pack_index[row, item] = p
                rank_in_pack[row, item] = r
    return pack_index, rank_in_pack


def balanced_packing(weight: torch.Tensor, num_packs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same packing with every item its own label: ``weight [X, n]`` -> ``pack_index, rank_in_pack``."""
    return balanced_packing_diverse(weight, torch.arange(weight.shape[1]).expand(weight.shape[0], -1), num_packs)


def _move_second_copies(weights: list[float], labels: list[int], packs: list[list[int]], loads: list[float]) -> None:
    """In place: swap each second copy of an expert on a pack with an item elsewhere, never raising the peak."""
    peak = max(loads)
    for p, members in enumerate(packs):
        for pos in range(len(members)):
            item = members[pos]
            if sum(labels[i] == labels[item] for i in members) < 2:
                continue
            here = {labels[i] for i in members}
            best = None
            for q, others in enumerate(packs):
                if q == p or any(labels[i] == labels[item] for i in others):
                    continue
                for qpos, other in enumerate(others):
                    d = weights[item] - weights[other]
                    cost = max(loads[p] - d, loads[q] + d)
                    if labels[other] not in here and cost <= peak + 1e-12 and (best is None or cost < best[0]):
                        best = (cost, q, qpos, d)
            if best is not None:
                _, q, qpos, d = best
                members[pos], packs[q][qpos] = packs[q][qpos], item
                loads[p] -= d
                loads[q] += d


def replicate_experts(weight: torch.Tensor, num_phy: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Heap-based greedy replication: ``weight [X, E]`` -> ``phy2log, rank [X, num_phy]``, ``logcnt [X, E]``."""
    rows, num_log = weight.shape
    phy2log = torch.empty(rows, num_phy, dtype=torch.int64)
    rank = torch.empty(rows, num_phy, dtype=torch.int64)
    logcnt = torch.empty(rows, num_log, dtype=torch.int64)
    for row, weights in enumerate(weight.double().tolist()):
        counts = [1] * num_log
        heap = [(-w, e) for e, w in enumerate(weights)]
        heapq.heapify(heap)
        slots = list(range(num_log))
        ranks = [0] * num_log
        for _ in range(num_phy - num_log):
            _, e = heapq.heappop(heap)
            slots.append(e)
            ranks.append(counts[e])
            counts[e] += 1
            heapq.heappush(heap, (-weights[e] / counts[e], e))
        phy2log[row] = torch.tensor(slots)
        rank[row] = torch.tensor(ranks)
        logcnt[row] = torch.tensor(counts)
    return phy2log, rank, logcnt
