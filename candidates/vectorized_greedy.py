"""DeepSeek's greedy policy with every step run for all rows at once, then duplicates spread.

Rows are layers (global policy) or (layer, node) pairs (hierarchical policy); numpy
carries them together. Same counts and the same packing rule as the baseline, so the
same GPU loads up to how near-exact ties between loads are broken:

* Replication: the greedy "next replica to the largest load per replica" is the
  highest-averages (D'Hondt) method; only the ``num_phy - E`` heaviest experts can win
  an extra replica, so the greedy steps run on them alone.
* Packing: LPT, heaviest item to the lightest pack with room, one array step per item
  for every row together. A pack's key is its load's float64 bit pattern read as an
  int64 (the same order, for non-negative loads) with the pack's flat index in the low
  bits, so one column-wise ``min`` both finds the lightest pack and names it; a full
  pack's load becomes infinite. Replicas are generated already sorted, expert by expert,
  so an expert's equal copies are adjacent and no sort over replicas is needed.
* Second copies of an expert on one GPU are then swapped with an item on another GPU
  wherever that does not raise the row's max load (the baseline keeps them).
* ``SWAP_STEPS`` optional swaps between each row's heaviest and lightest GPU. Off by
  default: they fit the window seen, and at 3 steps two default-suite cases lose balance
  on the next window, significantly over 5 seeds (``eplb-harness compare``).

At these sizes the cost is numpy's per-call overhead and the gathers over
``[rows, replicas]`` arrays, so the code keeps both few. Scratch arrays are freed before
the large output ``log2phy`` is made, which keeps the peak heap small.
"""

import numpy as np
import torch

SWAP_STEPS = 0
SPREAD_DUPLICATES = 1
# 1: DeepSeek's rule, expert groups kept whole on nodes when num_groups % num_nodes == 0;
# 0: groups free (one global policy over every GPU).
GROUP_LOCAL = 1
KNOBS = {"SWAP_STEPS": ("int", 0, 16), "SPREAD_DUPLICATES": ("int", 0, 1), "GROUP_LOCAL": ("int", 0, 1)}
_EPS = 1e-9


def _rows_take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[x, index[x, ...]]`` for every row x, through one flat ``take``."""
    rows, width = values.shape
    offset = (np.arange(rows) * width).reshape((rows,) + (1,) * (index.ndim - 1))
    return np.take(values, index + offset)


def _lpt_slots(sorted_w: np.ndarray, num_packs: int) -> np.ndarray:
    """Greedy capacity-limited packing of ``sorted_w [n, X]`` (item k of row x, heaviest first).

    Returns ``[X, n]``: each item's slot ``pack * (n / num_packs) + arrival rank in its pack``.
    Loads must be finite and non-negative. The pack index in a key's low bits changes the
    load it encodes by under 1e-11 of itself, so only near-exact ties can order differently.
    """
    n, rows = sorted_w.shape
    per_pack = n // num_packs
    low = np.int64((1 << (num_packs * rows - 1).bit_length()) - 1)
    high = ~low
    flat = np.arange(num_packs * rows).reshape(num_packs, rows)
    picks = np.empty((n, rows), dtype=np.int64)
    fills = np.ones((n, rows), dtype=np.int64)
    # All packs start empty, so the first round is item g -> pack g (ties go to the lower pack).
    picks[:num_packs] = flat
    key = (sorted_w[:num_packs].view(np.int64) & high) | flat  # [G, X]
    flat_key = key.reshape(-1)
    size = np.ones(num_packs * rows, dtype=np.int64)
    full = np.zeros(per_pack + 1)
    full[per_pack] = np.inf
    if per_pack == 1:
        key[:] = np.iinfo(np.int64).max
    for k in range(num_packs, n):
        lightest = key.min(axis=0)
        f = lightest & low
        picks[k] = f
        filled = size[f]
        filled += 1
        size[f] = filled
        fills[k] = filled
        load = lightest.view(np.float64) + sorted_w[k]
        load += full[filled]
        new = load.view(np.int64)
        new &= high
        new |= f
        flat_key[f] = new
    picks //= rows
    picks *= per_pack
    picks += fills
    picks -= 1
    return picks.T


def _rows_put(index: np.ndarray, *values: np.ndarray) -> list[np.ndarray]:
    """For each ``[X, n]`` array of ``values``, the array ``out`` with ``out[x, index[x, i]] = v[x, i]``."""
    rows, n = index.shape
    flat = index + (np.arange(rows) * n)[:, None]
    placed = []
    for v in values:
        out = np.empty_like(v)
        out.reshape(-1)[flat] = v
        placed.append(out)
    return placed


def _into_slots(slots: np.ndarray, num_packs: int, *values: np.ndarray) -> list[np.ndarray]:
    """Each ``[X, n]`` array of ``values`` rearranged by ``slots [X, n]`` into ``[X, G, n / G]``."""
    rows, n = slots.shape
    return [v.reshape(rows, num_packs, n // num_packs) for v in _rows_put(slots, *values)]


def _swap(arrays: tuple, x: np.ndarray, g1: np.ndarray, i1: np.ndarray, g2: np.ndarray, i2: np.ndarray) -> None:
    for arr in arrays:
        arr[x, g1, i1], arr[x, g2, i2] = arr[x, g2, i2], arr[x, g1, i1].copy()


def _refine(item_w: np.ndarray, carried: tuple) -> None:
    """In place: swap the item pair between each row's heaviest and lightest pack that most lowers their max.

    ``item_w [X, G, k]``; the ``carried`` arrays of that shape move with the items.
    """
    rows, num_packs, per_pack = item_w.shape
    row = np.arange(rows)
    load = item_w.sum(axis=2)
    for _ in range(SWAP_STEPS):
        hi, lo = load.argmax(axis=1), load.argmin(axis=1)
        delta = item_w[row, hi][:, :, None] - item_w[row, lo][:, None, :]  # [X, k, k]
        new_max = np.maximum(load[row, hi, None, None] - delta, load[row, lo, None, None] + delta)
        flat = new_max.reshape(rows, -1).argmin(axis=1)
        improve = new_max.reshape(rows, -1)[row, flat] < load[row, hi] * (1 - 1e-12)
        if not improve.any():
            break
        x, h, lw = row[improve], hi[improve], lo[improve]
        i, j = np.divmod(flat[improve], per_pack)
        d = delta[x, i, j]
        _swap((item_w, *carried), x, h, i, lw, j)
        load[x, h] -= d
        load[x, lw] += d


def _spread_duplicates(item_w: np.ndarray, item_l: np.ndarray, carried: tuple, num_labels: int) -> None:
    """In place: swap second copies of an expert on one GPU with items elsewhere, never raising the max.

    ``item_w, item_l [X, G, k]`` are each item's load and expert; the ``carried`` arrays
    move with the items. The copies of an expert on one pack must be adjacent (LPT places
    an expert's equal copies in consecutive steps). A swap takes out the last copy of
    such a run, for an item that is the last of its own run and whose expert the pack
    lacks, so that stays true. Each round tries one swap for every pack holding a repeat
    (its last run); swaps of one row that would touch the same pack wait for the next
    round, except the row's first. A pack whose repeat has no such swap is left as it is.
    """
    rows, num_packs, per_pack = item_l.shape
    if per_pack == 1:
        return
    load = item_w.sum(axis=2)
    # has[x, g, e]: pack g of row x holds expert e.
    has = np.zeros(rows * num_packs * num_labels, dtype=bool)
    pack_base = (np.arange(rows * num_packs) * num_labels).reshape(rows, num_packs)
    has[pack_base[:, :, None] + item_l] = True
    stuck = np.zeros((rows, num_packs), dtype=bool)
    active, row_l = np.arange(rows), item_l
    for _ in range(rows * num_packs * per_pack):
        in_run = row_l[:, :, :-1] == row_l[:, :, 1:]  # [A, G, k - 1]: item i + 1 repeats item i
        repeats = in_run.any(axis=2) & ~stuck[active]  # [A, G]
        r, g = np.nonzero(repeats)
        if not r.size:
            return
        x = active[r]
        i = per_pack - 1 - in_run[r, g, ::-1].argmax(axis=1)  # the last copy of the pack's last run
        a, row_w, row_l, row_load = item_l[x, g, i], item_w[x], row_l[r], load[x]
        delta = item_w[x, g, i][:, None, None] - row_w  # load g sheds if item (g2, j) takes a's place
        cost = np.maximum(load[x, g][:, None, None] - delta, row_load[:, :, None] + delta)
        excluded = has[pack_base[x, g][:, None, None] + row_l]  # g already holds b
        excluded |= has[pack_base[x] + a[:, None]][:, :, None]  # g2 already holds a (g does)
        excluded[:, :, :-1] |= in_run[r]  # b is not the last of its run on g2
        cost[excluded] = np.inf
        best = cost.reshape(len(x), -1).argmin(axis=1)
        ok = cost.reshape(len(x), -1)[np.arange(len(x)), best] <= row_load.max(axis=1) * (1 + _EPS)
        stuck[x[~ok], g[~ok]] = True
        g2, j = np.divmod(best, per_pack)
        pack, pack2 = x * num_packs + g, x * num_packs + g2
        touched = np.bincount(np.concatenate([pack, pack2[ok]]), minlength=rows * num_packs)
        first = np.ones(len(x), dtype=bool)
        first[1:] = x[1:] != x[:-1]
        go = ok & (first | ((touched[pack] == 1) & (touched[pack2] == 1)))
        active = np.unique(x[ok])  # rows whose repeats are all stuck are done
        x, g, i, a, g2, j = x[go], g[go], i[go], a[go], g2[go], j[go]
        b = item_l[x, g2, j]
        # The swaps of a row touch distinct packs, so no index repeats within each update.
        has[pack_base[x, g] + b] = True
        has[pack_base[x, g2] + a] = True
        has[pack_base[x, g2] + b] = (j > 0) & (item_l[x, g2, j - 1] == b)
        d = item_w[x, g, i] - item_w[x, g2, j]
        _swap((item_w, item_l, *carried), x, g, i, g2, j)
        load[x, g] -= d
        load[x, g2] += d
        row_l = item_l[active]


def _extra_copies(top_w: np.ndarray, extra: int) -> np.ndarray:
    """``[X, m]`` extra replicas won by the ``m`` heaviest experts (loads ``top_w [X, m]``), in ``extra`` steps."""
    rows, m = top_w.shape
    won = np.zeros(rows * m)
    per_copy = top_w.copy()
    flat_per_copy, flat_w = per_copy.reshape(-1), top_w.reshape(-1)
    base = np.arange(rows) * m
    for _ in range(extra):
        f = per_copy.argmax(axis=1) + base
        copies = won[f] + 2
        won[f] = copies - 1
        flat_per_copy[f] = flat_w[f] / copies
    return won.reshape(rows, m).astype(np.int64)


def _greedy_counts(w: np.ndarray, num_phy: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Experts heaviest first, ``order [X, E]``, with their loads and greedy replica counts, ``[X, E]``."""
    rows, num_log = w.shape
    order = np.argsort(-w, axis=1)
    sorted_w = _rows_take(w, order)
    counts = np.ones((rows, num_log), dtype=np.int64)
    extra = num_phy - num_log
    if extra:
        top = min(extra, num_log)
        counts[:, :top] += _extra_copies(sorted_w[:, :top], extra)
    return order, sorted_w, counts


def _replica_counts(w: np.ndarray, num_phy: int) -> np.ndarray:
    """``[X, E]`` greedy (D'Hondt) replica counts for ``[X, E]`` loads."""
    order, _, sorted_counts = _greedy_counts(w, num_phy)
    return _rows_put(order, sorted_counts)[0]


def _sorted_replicas(w: np.ndarray, num_phy: int) -> tuple[np.ndarray, ...]:
    """Greedy replicas of ``w [X, E]``, heaviest first, an expert's copies adjacent.

    Returns each replica's ``label`` (expert), copy ``rank`` and ``load``, ``[X, num_phy]``,
    and the counts ``[X, E]``. Scratch arrays are dropped as soon as they are used, to
    keep the peak heap small.
    """
    rows, num_log = w.shape
    order, sorted_w, sorted_counts = _greedy_counts(w, num_phy)
    (counts,) = _rows_put(order, sorted_counts)
    per_copy = sorted_w / sorted_counts
    del sorted_w
    # Only the heaviest experts' loads changed, so this stable sort has little to do.
    resort = (np.argsort(-per_copy, axis=1, kind="stable") + (np.arange(rows) * num_log)[:, None]).ravel()
    copies = sorted_counts.ravel()[resort]
    replica_of = np.repeat(resort, copies)  # flat index into the sorted arrays
    del resort, sorted_counts
    label, load = order.ravel()[replica_of], per_copy.ravel()[replica_of]
    del replica_of, order, per_copy
    rank = np.repeat(np.cumsum(copies) - copies, copies)  # where each replica's expert starts
    rank -= np.arange(rank.size)
    np.negative(rank, out=rank)
    return label.reshape(rows, -1), rank.reshape(rows, -1), load.reshape(rows, -1), counts


def _pack(w: np.ndarray, num_packs: int) -> np.ndarray:
    """``[X, n]`` weights -> ``[X, num_packs, n / num_packs]`` item indices of each pack (LPT, then swaps)."""
    order = np.argsort(-w, axis=1, kind="stable")
    sorted_w = _rows_take(w, order)
    item_w, members = _into_slots(_lpt_slots(sorted_w.T.copy(), num_packs), num_packs, sorted_w, order)
    if SWAP_STEPS and members.shape[2] > 1:
        _refine(item_w, (members,))
    return members


def _pack_replicas(w: np.ndarray, num_phy: int, num_packs: int) -> tuple[np.ndarray, ...]:
    """Replicate ``w [X, E]`` greedily and pack the replicas onto ``num_packs`` GPUs.

    Returns each slot's expert and copy rank, ``[X, num_phy]``, GPU by GPU, and the counts ``[X, E]``.
    """
    rows, num_log = w.shape
    label, rank, replica_w, counts = _sorted_replicas(w, num_phy)
    slots = _lpt_slots(replica_w.T.copy(), num_packs)
    if num_phy == num_packs or not (SWAP_STEPS or SPREAD_DUPLICATES):
        item_l, item_rank = _into_slots(slots, num_packs, label, rank)
        return item_l.reshape(rows, -1), item_rank.reshape(rows, -1), counts
    item_w, item_l, item_rank = _into_slots(slots, num_packs, replica_w, label, rank)
    del label, rank, replica_w, slots  # keeps the heap small while the swaps run
    if SWAP_STEPS:
        _refine(item_w, (item_l, item_rank))
        # Swaps may have separated an expert's copies on a pack; sorting each pack makes them adjacent.
        by_label = np.argsort(item_l, axis=2, kind="stable")
        item_w, item_l, item_rank = (np.take_along_axis(a, by_label, axis=2) for a in (item_w, item_l, item_rank))
    if SPREAD_DUPLICATES:
        _spread_duplicates(item_w, item_l, (item_rank,), num_log)
    return item_l.reshape(rows, -1), item_rank.reshape(rows, -1), counts


def balanced_packing(weight: torch.Tensor, num_packs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Vectorised LPT: ``weight [X, n]`` -> ``pack_index, rank_in_pack [X, n]``."""
    w = weight.double().numpy()
    rows, n = w.shape
    members = _pack(w, num_packs).reshape(rows, n)
    pack_of_slot, rank_of_slot = np.divmod(np.tile(np.arange(n), (rows, 1)), n // num_packs)
    pack_index, rank_in_pack = _rows_put(members, pack_of_slot, rank_of_slot)
    return torch.from_numpy(pack_index), torch.from_numpy(rank_in_pack)


def replicate_experts(weight: torch.Tensor, num_phy: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Greedy replica counts: ``weight [X, E]`` -> ``phy2log [X, P], rank [X, P], logcnt [X, E]``."""
    counts = _replica_counts(weight.double().numpy(), num_phy)
    rows, num_log = counts.shape
    phy2log = np.repeat(np.tile(np.arange(num_log), rows), counts.ravel()).reshape(rows, -1)
    rank = np.arange(num_phy) - _rows_take(np.cumsum(counts, axis=1) - counts, phy2log)
    return torch.from_numpy(phy2log), torch.from_numpy(rank), torch.from_numpy(counts)


def _placement(
    w: np.ndarray, num_replicas: int, num_groups: int, num_nodes: int, num_gpus: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``w [L, E]`` -> ``phy2log``, copy ``rank [L, P]``, ``logcnt [L, E]``: DeepSeek's hierarchical or global rule."""
    num_layers, num_log = w.shape
    if num_groups % num_nodes or not GROUP_LOCAL:
        num_groups = num_nodes = 1
    group_size = num_log // num_groups
    rows = num_layers * num_nodes
    layer_of_row = np.repeat(np.arange(num_layers), num_nodes)[:, None]

    # 1. Whole groups onto nodes; node n takes the experts of its groups, in order.
    groups_on_node = _pack(w.reshape(num_layers, num_groups, group_size).sum(-1), num_nodes)  # [L, N, g]
    node_experts = (groups_on_node[..., None] * group_size + np.arange(group_size)).reshape(rows, -1)

    # 2. Replicas inside each node (one row per layer and node), packed onto its GPUs.
    local, rank, counts = _pack_replicas(w[layer_of_row, node_experts], num_replicas // num_nodes,
                                         num_gpus // num_nodes)
    logcnt = np.empty((num_layers, num_log), dtype=np.int64)
    logcnt[layer_of_row, node_experts] = counts
    phy2log = _rows_take(node_experts, local).reshape(num_layers, num_replicas)
    return phy2log, rank.reshape(num_layers, num_replicas), logcnt


def _log2phy(phy2log: np.ndarray, phy_rank: np.ndarray, logcnt: np.ndarray) -> np.ndarray:
    """``[L, E, max count]`` slot of each expert copy, -1 padded, from ``phy2log, phy_rank [L, P]``.

    ``phy_rank`` is overwritten: it becomes the flat index of each slot's entry.
    """
    num_layers, num_phy = phy2log.shape
    num_log, most = logcnt.shape[1], int(logcnt.max())
    entry = phy_rank
    entry += (phy2log + (np.arange(num_layers) * num_log)[:, None]) * most
    log2phy = np.full((num_layers, num_log, most), -1, dtype=np.int64)
    log2phy.reshape(-1)[entry] = np.arange(num_phy)
    return log2phy


def rebalance_experts(
    weight: torch.Tensor, num_replicas: int, num_groups: int, num_nodes: int, num_gpus: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``weight [L, E]`` -> ``phy2log [L, P]``, ``log2phy [L, E, R]`` (-1 padded), ``logcnt [L, E]``."""
    phy2log, phy_rank, logcnt = _placement(weight.double().cpu().numpy(), num_replicas, num_groups, num_nodes,
                                           num_gpus)
    return torch.from_numpy(phy2log), torch.from_numpy(_log2phy(phy2log, phy_rank, logcnt)), torch.from_numpy(logcnt)
