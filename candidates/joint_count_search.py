"""Replica counts chosen together with placement, then local search on the heaviest GPU.

Greedy replication picks the counts that minimise the heaviest *replica*, blind to
the fact that every GPU holds exactly ``k`` slots: when more heavy replicas exist
than GPUs, two of them must share one. This policy searches the counts with the
packing in the loop, vectorised over all rows (layer, or layer x node) at once:

1. starting counts: the highest-averages (D'Hondt) rule, i.e. the greedy counts, for
   ``P - j`` slots with the last ``j`` given to the heaviest single-replica experts
   (``STARTS`` values of j);
2. packing: LPT in rounds (every GPU gets one item per round, so all end with k),
   then best-improvement swaps between the heaviest GPU and its ``PARTNERS`` lightest
   that never put two replicas of one expert on a GPU, then a pass that moves any
   remaining duplicate away when the max load allows it;
3. count search: each round proposes, per row, moving one replica from a donor
   expert (one whose per-replica load stays lowest after losing it) to an expert on
   the heaviest GPU, repacks every proposal and keeps the best that lowers the max.
   Proposals are ranked after ``SCREEN_STEPS`` swap steps with the lightest GPU only, and
   the chosen packing then gets the full ``SWAP_STEPS``: about 50 ms at DeepSeek-V3 shape
   instead of 270. Ranking after LPT alone (0 steps) is faster still, but with Mixtral's
   4 slots per GPU it picks worse counts (0.9888 of the bound on drifting@mixtral, under
   the 0.99 floor; 0.9905 with 2 steps).

Hierarchical mode (``num_groups % num_nodes == 0``) first packs expert groups onto
nodes with the same packer, then solves each node as a row.

Given ``previous_phy2log`` (the placement in force), a layer keeps it, repaired by a few
swaps, unless the fresh placement lowers its max GPU load by more than
``MIGRATION_THRESHOLD``: every moved copy is a weight transfer.

With ``FORECAST = 1`` and ``load_history`` (the windows before this one), it places for a
forecast of the next window instead of the window seen (:func:`_forecast`): the window
after is what the placement will serve.
"""

import numpy as np
import torch

STARTS = 8
COUNT_ROUNDS = 4
DONORS = 2
RECEIVERS = 2
SWAP_STEPS = 32
SCREEN_STEPS = 2
PARTNERS = 4
MIGRATION_THRESHOLD = 0.01
MIGRATION_SWAPS = 2
# 1: place for a forecast of the next window from load_history (see _forecast); 0: the window seen.
FORECAST = 0
# Two windows alone cannot tell noise from drift: a mean squared log change above this is taken as drift.
DRIFT_THRESHOLD = 0.08
# 1: DeepSeek's rule, expert groups kept whole on nodes when num_groups % num_nodes == 0;
# 0: groups free (balances better, at the cost of a group's tokens crossing nodes).
GROUP_LOCAL = 1
KNOBS = {
    "GROUP_LOCAL": ("int", 0, 1),
    "FORECAST": ("int", 0, 1),
    "DRIFT_THRESHOLD": ("float", 0.0, 1.0),
    "MIGRATION_THRESHOLD": ("float", 0.0, 0.2),
    "MIGRATION_SWAPS": ("int", 0, 16),
    "STARTS": ("int", 1, 11),
    "PARTNERS": ("int", 1, 64),
    "COUNT_ROUNDS": ("int", 0, 64),
    "DONORS": ("int", 1, 8),
    "RECEIVERS": ("int", 1, 8),
    "SWAP_STEPS": ("int", 0, 64),
    "SCREEN_STEPS": ("int", 0, 64),
}
_EPS = 1e-9


def _starting_counts(w: np.ndarray, num_phy: int, held_back: tuple[int, ...]) -> np.ndarray:
    """``[X, S, E]`` replica counts, one start per entry ``j`` of ``held_back``.

    Start j gives the greedy (highest-averages, D'Hondt) rule ``num_phy - j`` slots, then
    one extra replica to each of the j heaviest experts it left with a single replica.
    j = 0 is the greedy counts; j > 0 keeps the number of heavy replicas down when
    they would outnumber the GPUs and two would have to share one.
    """
    rows, num_log = w.shape
    extra = num_phy - num_log
    quotients = torch.from_numpy((w[:, :, None] / np.arange(1, extra + 1)).reshape(rows, -1))
    ranked = quotients.topk(extra, dim=1, sorted=True).indices.numpy() // extra  # [X, extra], best first
    offset = num_log * np.arange(rows)[:, None]
    starts = []
    for j in held_back:
        counts = 1 + np.bincount((ranked[:, : extra - j] + offset).ravel(),
                                 minlength=rows * num_log).reshape(rows, num_log)
        if j:
            second_tier = np.argsort(np.where(counts == 1, -w, np.inf), axis=1, kind="stable")[:, :j]
            np.add.at(counts, (np.arange(rows)[:, None], second_tier), 1)
        starts.append(counts)
    return np.stack(starts, axis=1)


def _expand(counts: np.ndarray) -> np.ndarray:
    """``[X, P]`` expert of each replica, replicas of one expert adjacent."""
    rows, num_log = counts.shape
    return np.repeat(np.tile(np.arange(num_log), rows), counts.ravel()).reshape(rows, -1)


def _pack(w: np.ndarray, label: np.ndarray, num_packs: int, steps: int, partners: int) -> tuple[np.ndarray, np.ndarray]:
    """Items ``w, label [X, n]`` -> ``members [X, G, n / G]`` item indices and ``load [X, G]``.

    LPT by rounds, then ``steps`` swap steps between the heaviest GPU and its ``partners`` lightest.
    """
    rows, n = w.shape
    per_pack = n // num_packs
    row = np.arange(rows)[:, None]
    order = np.argsort(-w, axis=1, kind="stable")
    sorted_w = np.take_along_axis(w, order, axis=1).reshape(rows, per_pack, num_packs)
    members = np.empty((rows, num_packs, per_pack), dtype=np.int64)
    load = np.zeros((rows, num_packs))
    for r in range(per_pack):
        lightest_first = np.argsort(load, axis=1, kind="stable")
        members[row, lightest_first, r] = order[:, r * num_packs:(r + 1) * num_packs]
        load[row, lightest_first] += sorted_w[:, r]
    if per_pack > 1 and num_packs > 1:
        _swap_heaviest(w, label, members, load, steps, partners)
    return members, load


def _gathered(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    rows = members.shape[0]
    return np.take_along_axis(values, members.reshape(rows, -1), axis=1).reshape(members.shape)


def _presence(label: np.ndarray, members: np.ndarray, num_labels: int) -> np.ndarray:
    """``[X, G, num_labels]`` replicas of each expert on each GPU."""
    rows, num_packs, per_pack = members.shape
    item_l = _gathered(label, members)
    flat = (np.arange(rows * num_packs).reshape(rows, num_packs, 1) * num_labels + item_l).ravel()
    return np.bincount(flat, minlength=rows * num_packs * num_labels).reshape(rows, num_packs, num_labels)


def _swap(arrays: tuple, x: np.ndarray, g1: np.ndarray, i1: np.ndarray, g2: np.ndarray, i2: np.ndarray) -> None:
    for arr in arrays:
        arr[x, g1, i1], arr[x, g2, i2] = arr[x, g2, i2], arr[x, g1, i1].copy()


def _swap_heaviest(w: np.ndarray, label: np.ndarray, members: np.ndarray, load: np.ndarray, steps: int,
                   partners: int) -> None:
    """In place: repeatedly apply the swap that most lowers the max of the heaviest GPU and a partner.

    Partners are the ``partners`` lightest GPUs.

    A swap never puts a second replica of an expert on a GPU.
    """
    rows, num_packs, per_pack = members.shape
    item_w, item_l = _gathered(w, members), _gathered(label, members)
    has = _presence(label, members, int(label.max()) + 1) > 0
    active = np.arange(rows)
    for _ in range(steps):
        if active.size == 0:
            break
        x = active
        xs = x[:, None, None]
        h = load[x].argmax(axis=1)
        hw, hl = item_w[x, h], item_l[x, h]  # [A, k]
        # Partners: the lightest GPUs (only they can take load off the heaviest).
        part = np.argsort(load[x], axis=1)[:, :partners]  # [A, Q]
        pw, pl = item_w[x[:, None], part], item_l[x[:, None], part]  # [A, Q, k]
        # The search runs in float32 (it is memory-bound); the chosen swap is checked in float64.
        # A swap with delta <= 0 cannot lower the heaviest GPU, so it never wins below.
        delta = hw.astype(np.float32)[:, :, None, None] - pw.astype(np.float32)[:, None]  # [A, k(h), Q, k(partner)]
        heavy = load[x, h].astype(np.float32)
        part_load = load[x[:, None], part].astype(np.float32)
        new_max = np.maximum(heavy[:, None, None, None] - delta, part_load[:, None, :, None] + delta)
        g_has_a = has[xs, part[:, None, :], hl[:, :, None]]  # [A, k, Q]: partner already holds h's expert
        h_has_b = has[xs, h[:, None, None], pl]  # [A, Q, k]: h already holds the partner's expert
        np.putmask(new_max, g_has_a[..., None] | h_has_b[:, None], np.inf)
        new_max = new_max.reshape(len(x), -1)
        flat = new_max.argmin(axis=1)
        allowed = np.isfinite(new_max[np.arange(len(x)), flat])
        i, q, j = np.unravel_index(flat, (per_pack, part.shape[1], per_pack))
        g = part[np.arange(len(x)), q]
        d = item_w[x, h, i] - item_w[x, g, j]
        ok = allowed & (np.maximum(load[x, h] - d, load[x, g] + d) < load[x, h] * (1 - _EPS))
        x, h, g, i, j, d = x[ok], h[ok], g[ok], i[ok], j[ok], d[ok]
        a, b = item_l[x, h, i], item_l[x, g, j]
        has[x, h, a], has[x, g, b], has[x, h, b], has[x, g, a] = False, False, True, True
        _swap((members, item_w, item_l), x, h, i, g, j)
        load[x, h] -= d
        load[x, g] += d
        active = x


def _spread_duplicates(w: np.ndarray, label: np.ndarray, members: np.ndarray, load: np.ndarray) -> None:
    """In place: swap second copies of an expert on one GPU with items elsewhere, never raising the max."""
    rows, num_packs, per_pack = members.shape
    item_w, item_l = _gathered(w, members), _gathered(label, members)
    has = _presence(label, members, int(label.max()) + 1)
    stuck = np.zeros((rows, num_packs), dtype=bool)
    for _ in range(rows * num_packs * per_pack):
        dup_gpu = ((has > 1).any(axis=2)) & ~stuck  # [X, G]
        x = np.flatnonzero(dup_gpu.any(axis=1))
        if x.size == 0:
            return
        g = dup_gpu[x].argmax(axis=1)
        i = (np.take_along_axis(has[x, g], item_l[x, g], axis=1) > 1).argmax(axis=1)
        a, wa = item_l[x, g, i], item_w[x, g, i]
        delta = wa[:, None, None] - item_w[x]  # [A, G, k]: load leaving g for item (g2, j)
        cost = np.maximum(load[x, g][:, None, None] - delta, load[x][:, :, None] + delta)
        g2_has_a = np.take_along_axis(has[x], a[:, None, None], axis=2) > 0  # [A, G, 1]
        g_has_b = np.take_along_axis(has[x, g], item_l[x].reshape(len(x), -1), axis=1).reshape(cost.shape) > 0
        bad = g2_has_a | g_has_b | (cost > load[x].max(axis=1)[:, None, None] * (1 + _EPS))
        cost[bad] = np.inf
        flat = cost.reshape(len(x), -1).argmin(axis=1)
        ok = np.isfinite(cost.reshape(len(x), -1)[np.arange(len(x)), flat])
        stuck[x[~ok], g[~ok]] = True
        x, g, i, flat = x[ok], g[ok], i[ok], flat[ok]
        g2, j = np.divmod(flat, per_pack)
        a, b = item_l[x, g, i], item_l[x, g2, j]
        # One swap per row, so no index repeats within each update.
        has[x, g, a] -= 1
        has[x, g2, b] -= 1
        has[x, g, b] += 1
        has[x, g2, a] += 1
        d = item_w[x, g, i] - item_w[x, g2, j]
        _swap((members, item_w, item_l), x, g, i, g2, j)
        load[x, g] -= d
        load[x, g2] += d


def _place(w: np.ndarray, counts: np.ndarray, num_packs: int, steps: int, partners: int) -> tuple[np.ndarray, ...]:
    """Pack the replicas of ``counts [X, E]``: returns ``label [X, P]``, ``members [X, G, k]``, ``load [X, G]``."""
    label = _expand(counts)
    replica_w = np.take_along_axis(w / counts, label, axis=1)
    members, load = _pack(replica_w, label, num_packs, steps, partners)
    return label, members, load


def _count_moves(w: np.ndarray, counts: np.ndarray, heavy_gpu_experts: np.ndarray) -> np.ndarray:
    """``[X, M, E]`` count changes worth trying for rows ``w, counts [X, E]``.

    Receivers are the experts with the heaviest replicas and those on the heaviest GPU
    (``heavy_gpu_experts [X, k]``, heaviest replica first); donors those whose replicas
    stay lightest after giving one up. Moves: one replica from a donor to a receiver,
    or two from one donor to two receivers (a single move can be a dead end when two
    cold experts both need a second replica).
    """
    rows, num_log = counts.shape
    receivers = np.argsort(-(w / counts), axis=1, kind="stable")[:, :RECEIVERS]
    singles = np.concatenate([receivers, heavy_gpu_experts[:, :RECEIVERS]], axis=1)
    after_loss = np.where(counts > 1, w / np.maximum(counts - 1, 1), np.inf)
    donors = np.argsort(after_loss, axis=1, kind="stable")[:, :DONORS]
    pairs = [(r1, r2) for r1 in range(receivers.shape[1]) for r2 in range(r1 + 1, receivers.shape[1])]
    row = np.arange(rows)
    moves = []
    for d in range(donors.shape[1]):
        a = donors[:, d]
        for r in range(singles.shape[1]):
            move = np.zeros((rows, num_log), dtype=np.int64)
            move[row, a] -= 1
            move[row, singles[:, r]] += 1
            moves.append(np.where((counts[row, a] > 1)[:, None], move, 0))
        for r1, r2 in pairs:
            move = np.zeros((rows, num_log), dtype=np.int64)
            move[row, a] -= 2
            move[row, receivers[:, r1]] += 1
            move[row, receivers[:, r2]] += 1
            moves.append(np.where((counts + move >= 1).all(axis=1, keepdims=True), move, 0))
    return np.stack(moves, axis=1)


def _best_of(w: np.ndarray, trial: np.ndarray, num_packs: int) -> tuple[np.ndarray, ...]:
    """Pack every ``trial [X, M, E]`` count vector; per row the best: counts, label, members, load.

    Trials are packed with ``SCREEN_STEPS`` swap steps against the lightest GPU only: enough to
    rank them, at a fraction of the cost.
    """
    rows, num_trials, num_log = trial.shape
    flat = trial.reshape(-1, num_log)
    label, members, load = _place(np.repeat(w, num_trials, axis=0), flat, num_packs, SCREEN_STEPS, 1)
    peak = load.max(axis=1).reshape(rows, num_trials)
    peak[~(trial >= 1).all(axis=2)] = np.inf
    pick = np.arange(rows) * num_trials + peak.argmin(axis=1)
    return flat[pick], label[pick], members[pick], load[pick]


def _search_counts(w: np.ndarray, num_phy: int, num_packs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joint counts and packing for rows ``w [X, E]``: returns ``counts [X, E]``, ``label [X, P]``, ``members``."""
    rows, num_log = w.shape
    extra = num_phy - num_log
    held_back = tuple(j for j in (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32)[:STARTS] if j <= min(extra, num_log))
    counts, label, members, load = _best_of(w, _starting_counts(w, num_phy, held_back), num_packs)
    if num_packs == 1:
        return counts, label, members
    # With no spare slot there are no counts to search, but the packing still gets its polish below.
    active = np.arange(rows) if extra else np.arange(0)
    for _ in range(COUNT_ROUNDS):
        if active.size == 0:
            break
        x = active
        h = load[x].argmax(axis=1)
        on_h = np.take_along_axis(label[x], members[x, h], axis=1)  # [A, k]
        per_replica = np.take_along_axis(w[x] / counts[x], on_h, axis=1)
        on_h = np.take_along_axis(on_h, np.argsort(-per_replica, axis=1, kind="stable"), axis=1)
        trial = counts[x][:, None] + _count_moves(w[x], counts[x], on_h)
        c, lab, mem, lo = _best_of(w[x], trial, num_packs)
        better = lo.max(axis=1) < load[x].max(axis=1) * (1 - _EPS)
        x = x[better]
        counts[x], label[x], members[x], load[x] = c[better], lab[better], mem[better], lo[better]
        active = x
    replica_w = np.take_along_axis(w / counts, label, axis=1)
    if SWAP_STEPS > SCREEN_STEPS:
        _swap_heaviest(replica_w, label, members, load, SWAP_STEPS - SCREEN_STEPS, PARTNERS)
    _spread_duplicates(replica_w, label, members, load)
    return counts, label, members


def _rebalance_rows(w: np.ndarray, num_phy: int, num_packs: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``w [X, E]`` -> slot-ordered ``phy2log [X, P]`` and ``counts [X, E]``."""
    counts, label, members = _search_counts(w, num_phy, num_packs)
    return np.take_along_axis(label, members.reshape(len(w), -1), axis=1), counts


def _peak(w: np.ndarray, phy2log: np.ndarray, num_gpus: int) -> np.ndarray:
    """``[L]`` max GPU load of placements ``phy2log [L, P]`` under loads ``w [L, E]``."""
    counts = _counts_of(phy2log, w.shape[1])
    replica_w = np.take_along_axis(w / np.maximum(counts, 1), phy2log, axis=1)
    return replica_w.reshape(len(w), num_gpus, -1).sum(-1).max(axis=1)


def _counts_of(phy2log: np.ndarray, num_log: int) -> np.ndarray:
    rows = len(phy2log)
    flat = (phy2log + num_log * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * num_log).reshape(rows, num_log)


def _repair(w: np.ndarray, previous: np.ndarray, num_nodes: int, num_gpus: int) -> np.ndarray:
    """The previous placement ``[L, P]`` after at most MIGRATION_SWAPS swaps per node off its heaviest GPU."""
    num_layers, num_phy = previous.shape
    counts = _counts_of(previous, w.shape[1])
    replica_w = np.take_along_axis(w / np.maximum(counts, 1), previous, axis=1)
    rows, per_node = num_layers * num_nodes, num_phy // num_nodes
    label = previous.reshape(rows, per_node)
    members = np.broadcast_to(np.arange(per_node).reshape(1, num_gpus // num_nodes, -1),
                              (rows, num_gpus // num_nodes, num_phy // num_gpus)).copy()
    load = replica_w.reshape(rows, num_gpus // num_nodes, -1).sum(-1)
    _swap_heaviest(replica_w.reshape(rows, per_node), label, members, load, MIGRATION_SWAPS, PARTNERS)
    return np.take_along_axis(label, members.reshape(rows, -1), axis=1).reshape(num_layers, num_phy)


def _align_gpus(fresh: np.ndarray, previous: np.ndarray, num_nodes: int, num_gpus: int) -> np.ndarray:
    """``fresh [P]`` with its GPUs renumbered inside each node to keep most experts where they were."""
    from scipy.optimize import linear_sum_assignment

    per_node, gpus = len(fresh) // num_nodes, num_gpus // num_nodes
    out = fresh.copy()
    for n in range(num_nodes):
        new = fresh[n * per_node:(n + 1) * per_node].reshape(gpus, -1)
        old = previous[n * per_node:(n + 1) * per_node].reshape(gpus, -1)
        overlap = (new[:, None, :, None] == old[None, :, None, :]).any(axis=3).sum(axis=2)  # [new GPU, old GPU]
        rows, cols = linear_sum_assignment(-overlap)
        placed = np.empty_like(new)
        placed[cols] = new[rows]
        out[n * per_node:(n + 1) * per_node] = placed.ravel()
    return out


def _follow_previous(w: np.ndarray, fresh: np.ndarray, previous: np.ndarray, num_nodes: int,
                     num_gpus: int) -> np.ndarray:
    """Per layer: the repaired previous placement, or ``fresh`` (GPU-aligned) when it gains enough."""
    kept = _repair(w, previous, num_nodes, num_gpus)
    replace = _peak(w, fresh, num_gpus) < _peak(w, kept, num_gpus) * (1 - MIGRATION_THRESHOLD)
    for layer in np.flatnonzero(replace):
        kept[layer] = _align_gpus(fresh[layer], previous[layer], num_nodes, num_gpus)
    return kept


def _robust_variance(d: np.ndarray) -> np.ndarray:
    """``[L]`` variance of the zero-centred differences ``d [k, L, E]`` per layer, from their median size.

    The median ignores the few experts whose load jumps in a burst.
    """
    return (np.median(np.abs(d.transpose(1, 0, 2).reshape(d.shape[1], -1)), axis=1) / 0.6745) ** 2


def _forecast(w: np.ndarray, history: np.ndarray) -> np.ndarray:
    """Forecast ``[L, E]`` of the next window from ``w [L, E]`` and the windows before it, ``history [k, L, E]``.

    A local-level model of each expert's log load: every window is a level plus noise
    (variance ``r``), and the level takes a random step between windows (variance ``q``).
    Per layer, differences one window apart have variance ``q + 2r`` and two apart
    ``2q + 2r``, which separates them; stationary traffic (``q = 0``) then averages the
    windows, drifting traffic follows the latest. A Kalman filter gives each level; the
    forecast keeps the latest window's total.
    """
    x = np.log(np.concatenate([history, w[None]]) + 0.5)
    x -= x.mean(axis=2, keepdims=True)  # log shares, up to a per-window constant
    near = _robust_variance(x[1:] - x[:-1])
    if len(x) >= 3:
        step = np.maximum(_robust_variance(x[2:] - x[:-2]) - near, 0.0)
    else:
        step = np.where(near > DRIFT_THRESHOLD, near / 2, 0.0)
    noise = np.maximum((near - step) / 2, 1e-4)[:, None]
    step = step[:, None]
    level, spread = x[0], noise
    for window in x[1:]:
        prior = spread + step
        gain = prior / (prior + noise)
        level = level + gain * (window - level)
        spread = (1 - gain) * prior
    forecast = np.exp(level)
    return forecast * (w.sum(axis=1, keepdims=True) / forecast.sum(axis=1, keepdims=True))


def rebalance_experts(
    weight: torch.Tensor,
    num_replicas: int,
    num_groups: int,
    num_nodes: int,
    num_gpus: int,
    previous_phy2log: torch.Tensor | None = None,
    load_history: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``weight [L, E]`` -> ``phy2log [L, P]``, ``log2phy [L, E, R]`` (-1 padded), ``logcnt [L, E]``.

    With ``previous_phy2log [L, P]`` (the placement in force), a layer keeps it, repaired
    by a few swaps, unless a fresh placement lowers its max GPU load by more than
    ``MIGRATION_THRESHOLD``; every moved copy costs a weight transfer. With ``FORECAST``
    and ``load_history [k, L, E]`` (k >= 1), it places for :func:`_forecast`.
    """
    w = weight.double().cpu().numpy()
    if FORECAST and load_history is not None and len(load_history):
        w = _forecast(w, load_history.double().cpu().numpy())
    num_layers, num_log = w.shape
    real_nodes = num_nodes
    if num_groups % num_nodes or not GROUP_LOCAL:
        num_groups = num_nodes = 1
    group_size = num_log // num_groups
    log_per_node = num_log // num_nodes

    group_w = w.reshape(num_layers, num_groups, group_size).sum(-1)
    group_label = np.broadcast_to(np.arange(num_groups), group_w.shape)
    groups_on_node, _ = _pack(group_w, group_label, num_nodes, SWAP_STEPS, PARTNERS)
    node_experts = (groups_on_node[..., None] * group_size + np.arange(group_size)).reshape(
        num_layers * num_nodes, log_per_node)
    node_w = w[np.repeat(np.arange(num_layers), num_nodes)[:, None], node_experts]
    local, _ = _rebalance_rows(node_w, num_replicas // num_nodes, num_gpus // num_nodes)
    phy2log = np.take_along_axis(node_experts, local, axis=1).reshape(num_layers, num_replicas)

    if previous_phy2log is not None and tuple(previous_phy2log.shape) == phy2log.shape:
        phy2log = _follow_previous(w, phy2log, previous_phy2log.cpu().numpy().astype(np.int64), real_nodes, num_gpus)

    logcnt = _counts_of(phy2log, num_log)
    # Replica rank: position among the expert's replicas, in slot order.
    order = np.argsort(phy2log, axis=1, kind="stable")
    first = np.cumsum(logcnt, axis=1) - logcnt
    rank = np.empty_like(phy2log)
    np.put_along_axis(rank, order, np.arange(num_replicas) - np.take_along_axis(first, np.sort(phy2log, axis=1),
                                                                                 axis=1), axis=1)
    log2phy = np.full((num_layers, num_log, int(logcnt.max())), -1, dtype=np.int64)
    log2phy[np.arange(num_layers)[:, None], phy2log, rank] = np.arange(num_replicas)
    return torch.from_numpy(phy2log), torch.from_numpy(log2phy), torch.from_numpy(logcnt)
