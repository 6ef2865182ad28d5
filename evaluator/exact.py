"""Exact reference: the least possible max GPU load of one layer, as a mixed-integer program.

Only for small shapes (a few tens of experts and GPUs); it is the yardstick that shows
whether :mod:`evaluator.bounds` is valid and how far from the truth it is.

For loads ``w[E]``, ``P`` slots on ``G`` GPUs (``k = P / G`` slots each), the program
chooses every expert's replica count and where its replicas go. Since an expert's load
is split evenly over its replicas, the load a replica adds depends on the count; the
count is therefore one-hot (``y[e, c] = 1`` iff expert e has c replicas) and
``z[e, c, g]`` counts replicas of e on GPU g under that choice::

    minimise T
    sum_c y[e, c] = 1                               every expert, one count
    sum_g z[e, c, g] = c * y[e, c]                  the count's replicas are all placed
    sum_{e, c} z[e, c, g] = k                       every GPU fills its slots
    sum_{e, c} (w[e] / c) * z[e, c, g] <= T         T is the max GPU load

With ``groups_on_nodes`` (DeepSeek's hierarchical structure: every expert group lives
on one node, each node holding ``num_groups / N`` groups), binaries ``u[q, n]`` place
group q on node n and replicas may only use their group's node. GPUs of a node are
interchangeable, so their loads are ordered to cut symmetric solutions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array


@dataclass(frozen=True)
class ExactResult:
    """Outcome of :func:`solve_layer`.

    ``max_gpu_load`` is the best placement found (the optimum when ``optimal``);
    ``lower_bound`` is the solver's proven bound (equal to it when optimal);
    ``phy2log [P]`` / ``logcnt [E]`` the placement, slots laid out GPU by GPU.
    """

    max_gpu_load: float
    lower_bound: float
    optimal: bool
    phy2log: np.ndarray
    logcnt: np.ndarray


class _Program:
    """Column bookkeeping for the sparse constraint matrix."""

    def __init__(self) -> None:
        self.num_vars = 0
        self.rows: list[tuple[dict[int, float], float, float]] = []

    def add_vars(self, count: int) -> np.ndarray:
        start = self.num_vars
        self.num_vars += count
        return np.arange(start, start + count)

    def add_row(self, coefs: dict[int, float], low: float, high: float) -> None:
        self.rows.append((coefs, low, high))

    def constraint(self) -> LinearConstraint:
        r, c, v = [], [], []
        for i, (coefs, _, _) in enumerate(self.rows):
            r += [i] * len(coefs)
            c += list(coefs)
            v += list(coefs.values())
        matrix = coo_array((v, (r, c)), shape=(len(self.rows), self.num_vars)).tocsr()
        return LinearConstraint(matrix, [row[1] for row in self.rows], [row[2] for row in self.rows])


def solve_layer(
    load: np.ndarray,
    num_replicas: int,
    num_gpus: int,
    num_groups: int = 1,
    num_nodes: int = 1,
    groups_on_nodes: bool = False,
    time_limit: float = 60.0,
) -> ExactResult:
    """Least possible max GPU load for one layer's ``load [E]`` (see module docstring).

    Raises:
        ValueError: when the shape does not divide or the solver finds no placement in time.
    """
    w = np.asarray(load, dtype=np.float64)
    num_log = w.shape[0]
    if num_replicas < num_log or num_replicas % num_gpus or num_gpus % num_nodes or num_log % num_groups:
        raise ValueError(f"shape does not divide: {num_log} experts, {num_replicas} slots, {num_gpus} GPUs")
    if groups_on_nodes and num_groups % num_nodes:
        raise ValueError(f"{num_groups} groups cannot be spread evenly over {num_nodes} nodes")
    slots = num_replicas // num_gpus
    max_count = num_replicas - num_log + 1
    gpus_per_node = num_gpus // num_nodes
    counts = np.arange(1, max_count + 1)

    prog = _Program()
    t = int(prog.add_vars(1)[0])
    y = prog.add_vars(num_log * max_count).reshape(num_log, max_count)
    z = prog.add_vars(num_log * max_count * num_gpus).reshape(num_log, max_count, num_gpus)
    upper = [np.inf] + [1] * y.size + list(np.broadcast_to(np.minimum(counts, slots)[None, :, None], z.shape).ravel())

    for e in range(num_log):
        prog.add_row({int(v): 1.0 for v in y[e]}, 1, 1)
        for ci, c in enumerate(counts):
            prog.add_row({int(v): 1.0 for v in z[e, ci]} | {int(y[e, ci]): -float(c)}, 0, 0)
    gpu_load_coefs = []
    for g in range(num_gpus):
        prog.add_row({int(v): 1.0 for v in z[:, :, g].ravel()}, slots, slots)
        coefs = {int(z[e, ci, g]): w[e] / c for e in range(num_log) for ci, c in enumerate(counts) if w[e] > 0}
        gpu_load_coefs.append(coefs)
        prog.add_row(coefs | {t: -1.0}, -np.inf, 0)
    for g in range(num_gpus - 1):
        if (g + 1) % gpus_per_node:  # same node: order loads to break symmetry
            diff = dict(gpu_load_coefs[g])
            for v, a in gpu_load_coefs[g + 1].items():
                diff[v] = diff.get(v, 0.0) - a
            prog.add_row(diff, 0, np.inf)

    if groups_on_nodes:
        group_size = num_log // num_groups
        u = prog.add_vars(num_groups * num_nodes).reshape(num_groups, num_nodes)
        upper += [1] * u.size
        for q in range(num_groups):
            prog.add_row({int(v): 1.0 for v in u[q]}, 1, 1)
        for n in range(num_nodes):
            prog.add_row({int(v): 1.0 for v in u[:, n]}, num_groups // num_nodes, num_groups // num_nodes)
        for e in range(num_log):
            q = e // group_size
            for n in range(num_nodes):
                node_gpus = range(n * gpus_per_node, (n + 1) * gpus_per_node)
                # At most max_count replicas of e on node n, none unless its group is there.
                row = {int(z[e, ci, g]): 1.0 for ci in range(max_count) for g in node_gpus}
                prog.add_row(row | {int(u[q, n]): -float(max_count)}, -np.inf, 0)

    cost = np.zeros(prog.num_vars)
    cost[t] = 1.0
    integrality = np.ones(prog.num_vars)
    integrality[t] = 0
    res = milp(
        cost,
        constraints=prog.constraint(),
        integrality=integrality,
        bounds=Bounds(np.zeros(prog.num_vars), np.array(upper, dtype=np.float64)),
        options={"time_limit": time_limit, "mip_rel_gap": 1e-9},
    )
    if res.x is None:
        raise ValueError(f"no placement found within {time_limit:g} s ({res.message})")
    zz = np.rint(res.x[z]).astype(np.int64).sum(axis=1)  # [E, G] replicas of e on g
    logcnt = zz.sum(axis=1)
    phy2log = np.concatenate([np.repeat(np.arange(num_log), zz[:, g]) for g in range(num_gpus)])
    gpu_load = (w / logcnt) @ zz
    dual = getattr(res, "mip_dual_bound", None)
    return ExactResult(
        max_gpu_load=float(gpu_load.max()),
        lower_bound=float(dual if dual is not None and np.isfinite(dual) else gpu_load.max()),
        optimal=res.status == 0,
        phy2log=phy2log,
        logcnt=logcnt,
    )
