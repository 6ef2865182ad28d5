"""Water-filling replica counts and label-aware packing with a bounded pair swap.

The ideas of seed 000, written afresh:

* replica counts: binary-search the per-replica load threshold ``t`` so that
  ``sum max(1, ceil(w / t))`` fits the slots, hand leftover slots to the largest
  ``w / c``, then move one replica from a donor to a receiver if that lowers the peak;
* replica -> GPU packing (``balanced_packing_diverse``): LPT, but among packs whose
  load is within ``TIE_TOLERANCE`` of the lightest, prefer one that does not already
  hold the same expert (a second copy on one GPU is a wasted slot);
* then up to ``SWAP_ROUNDS`` swaps between the heaviest pack and the lightest, trying
  the ``SWAP_BREADTH`` heaviest items of one against the ``SWAP_BREADTH`` lightest of the other;
* finally any second copy of an expert on a GPU is swapped away when no load passes the peak.
"""

import math

import torch

SWAP_BREADTH = 2
SWAP_ROUNDS = 4
TIE_TOLERANCE = 0.02
# 1: DeepSeek's rule, expert groups kept whole on nodes when num_groups % num_nodes == 0
# (the harness composes the hierarchical policy); 0: groups free, one global policy.
GROUP_LOCAL = 1
KNOBS = {
    "GROUP_LOCAL": ("int", 0, 1),
    "SWAP_BREADTH": ("int", 1, 12),
    "SWAP_ROUNDS": ("int", 0, 32),
    "TIE_TOLERANCE": ("float", 0.0, 0.2),
}


def _counts(weights: list[float], num_phy: int) -> list[int]:
    n = len(weights)
    if num_phy == n or max(weights) <= 0:
        counts = [1] * n
        for i in range(num_phy - n):
            counts[i % n] += 1
        return counts
    lo, hi = 0.0, max(weights)
    for _ in range(50):
        mid = (lo + hi) / 2
        if sum(max(1, math.ceil(w / mid)) for w in weights) <= num_phy:
            hi = mid
        else:
            lo = mid
    counts = [max(1, math.ceil(w / hi)) for w in weights]
    for _ in range(num_phy - sum(counts)):
        e = max(range(n), key=lambda i: weights[i] / counts[i])
        counts[e] += 1
    # One donor -> receiver move when it lowers the peak load per replica.
    peak = max(w / c for w, c in zip(weights, counts, strict=True))
    donors = [i for i in range(n) if counts[i] > 1]
    if donors:
        donor = min(donors, key=lambda i: weights[i] / (counts[i] - 1))
        receiver = max(range(n), key=lambda i: weights[i] / counts[i])
        if donor != receiver:
            counts[donor] -= 1
            counts[receiver] += 1
            if max(w / c for w, c in zip(weights, counts, strict=True)) >= peak:
                counts[donor] += 1
                counts[receiver] -= 1
    return counts


def replicate_experts(weight: torch.Tensor, num_phy: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Water-filling counts: ``weight [X, E]`` -> ``phy2log, rank [X, num_phy]``, ``logcnt [X, E]``."""
    rows, num_log = weight.shape
    logcnt = torch.tensor([_counts(w, num_phy) for w in weight.double().tolist()], dtype=torch.int64)
    phy2log = torch.repeat_interleave(torch.arange(num_log).repeat(rows), logcnt.view(-1)).view(rows, num_phy)
    first = torch.cumsum(logcnt, dim=1) - logcnt
    rank = torch.arange(num_phy).expand(rows, -1) - first.gather(1, phy2log)
    return phy2log, rank, logcnt


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


def _pack_row(weights: list[float], labels: list[int], num_packs: int) -> list[list[int]]:
    capacity = len(weights) // num_packs
    packs: list[list[int]] = [[] for _ in range(num_packs)]
    loads = [0.0] * num_packs
    held: list[set[int]] = [set() for _ in range(num_packs)]
    for item in sorted(range(len(weights)), key=lambda i: -weights[i]):
        open_packs = [p for p in range(num_packs) if len(packs[p]) < capacity]
        lightest = min(loads[p] for p in open_packs)
        near = [p for p in open_packs if loads[p] <= lightest + TIE_TOLERANCE * max(weights[item], 1e-12)]
        fresh = [p for p in near if labels[item] not in held[p]]
        pack = min(fresh or near, key=loads.__getitem__)
        packs[pack].append(item)
        loads[pack] += weights[item]
        held[pack].add(labels[item])
    for _ in range(SWAP_ROUNDS):
        hi = max(range(num_packs), key=loads.__getitem__)
        lo = min(range(num_packs), key=loads.__getitem__)
        heavy = sorted(packs[hi], key=lambda i: -weights[i])[:SWAP_BREADTH]
        light = sorted(packs[lo], key=lambda i: weights[i])[:SWAP_BREADTH]
        best, best_peak = None, loads[hi]
        for a in heavy:
            for b in light:
                d = weights[a] - weights[b]
                peak = max(loads[hi] - d, loads[lo] + d)
                if peak < best_peak - 1e-12:
                    best, best_peak = (a, b, d), peak
        if best is None:
            break
        a, b, d = best
        packs[hi][packs[hi].index(a)] = b
        packs[lo][packs[lo].index(b)] = a
        loads[hi] -= d
        loads[lo] += d
    _move_second_copies(weights, labels, packs, loads)
    return packs


def balanced_packing_diverse(
    weight: torch.Tensor, label: torch.Tensor, num_packs: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Label-aware LPT + pair swaps: ``weight, label [X, n]`` -> ``pack_index, rank_in_pack [X, n]``."""
    rows, n = weight.shape
    pack_index = torch.empty(rows, n, dtype=torch.int64)
    rank_in_pack = torch.empty(rows, n, dtype=torch.int64)
    for row, (weights, labels) in enumerate(zip(weight.double().tolist(), label.tolist(), strict=True)):
        for p, members in enumerate(_pack_row(weights, labels, num_packs)):
            for r, item in enumerate(members):
                pack_index[row, item] = p
                rank_in_pack[row, item] = r
    return pack_index, rank_in_pack


def balanced_packing(weight: torch.Tensor, num_packs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same packing with every item its own label: ``weight [X, n]`` -> ``pack_index, rank_in_pack``."""
    labels = torch.arange(weight.shape[1]).expand(weight.shape[0], -1)
    return balanced_packing_diverse(weight, labels, num_packs)
