"""Every figure the harness shows, ranks, compares or optimises, declared once.

A :class:`Figure` says which way is better, how it is pooled over a candidate's cases,
what a failed case counts for, how it is printed, and whether ``compare`` tests it over
seeds. The leaderboard's columns and ``--rank-by`` choices, ``compare``, the tables'
number formats and the evolve config's ``fitness:`` all read :data:`FIGURES`; adding a
figure is one :func:`declare` call here (plus, for a new per-case metric, its computation
in :mod:`evaluator.metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

# How a figure is pooled over a candidate's cases.
POOLINGS = ("mean", "median", "geomean", "min", "derived")
# What a failed case counts for: "zero" (an invalid output scores nothing) or "skip" (left out).
FAILURE_RULES = ("zero", "skip")


@dataclass(frozen=True)
class Figure:
    """One figure: per case (from the store) or per candidate (``pooled="derived"``, from the others)."""

    name: str
    description: str
    higher_is_better: bool = True
    pooled: str = "mean"
    failed_case: str = "skip"
    fmt: str = ".4f"
    # The label ``compare`` gives the paired difference over seeds (None: not tested there).
    compared_as: str | None = None
    # Shown in the default leaderboard table.
    summary: bool = False
    # Needs the timing phase (a runtime, or derived from one).
    timed: bool = False
    # For a derived figure: its value from a candidate's pooled figures (plus ``mean_runtime_s``).
    derive: Callable[[dict], float] | None = None

    def __post_init__(self) -> None:
        if (self.pooled == "derived") != (self.derive is not None):
            raise ValueError(f"figure {self.name}: a derived figure, and only one, has a derive function")
        if self.pooled not in POOLINGS:
            raise ValueError(f"figure {self.name}: pooled must be one of {', '.join(POOLINGS)}")
        if self.failed_case not in FAILURE_RULES:
            raise ValueError(f"figure {self.name}: failed_case must be one of {', '.join(FAILURE_RULES)}")


FIGURES: dict[str, Figure] = {}


def declare(figure: Figure) -> Figure:
    """Add ``figure`` to :data:`FIGURES` (a name is declared once)."""
    if figure.name in FIGURES:
        raise ValueError(f"figure {figure.name} is declared twice")
    FIGURES[figure.name] = figure
    return figure


def get_figure(name: str) -> Figure:
    """The figure called ``name``; a ValueError lists the known ones."""
    try:
        return FIGURES[name]
    except KeyError:
        raise ValueError(f"unknown figure {name!r}; known: {', '.join(FIGURES)}") from None


def adrs_score(gpu_balancedness: float, mean_runtime_s: float) -> float:
    """The published EPLB evaluators' score: ``90 x balancedness + 5 x min(0.002 s / t, 2)``, minus
    ``min(20 t, 20)`` when ``t > 0.01 s``; ``t`` is the mean rebalance time in seconds (NaN untimed)."""
    t = mean_runtime_s
    if not t > 0:
        return math.nan
    return 90 * gpu_balancedness + 5 * min(0.002 / t, 2) - (min(20 * t, 20) if t > 0.01 else 0.0)


# Balance on the next window (what the leaderboard ranks) and on the same window.
declare(Figure("gpu_balancedness", "mean / max GPU load, t -> t+1", pooled="mean", failed_case="zero",
               compared_as="next_window", summary=True))
declare(Figure("gap_to_bound", "GPU balancedness / the bound valid for any placement", failed_case="zero",
               summary=True))
declare(Figure("gap_to_grouped_bound", "GPU balancedness / the bound of group-local placements", failed_case="zero"))
declare(Figure("group_node_spread", "nodes holding an expert group, mean over (layer, group); 1.0 = groups whole",
               higher_is_better=False, fmt=".2f", summary=True))
declare(Figure("node_balancedness", "mean / max node load, t -> t+1", failed_case="zero", summary=True))
declare(Figure("oracle_gpu_balancedness", "mean / max GPU load on the window balanced", failed_case="zero",
               compared_as="same_window", summary=True))
declare(Figure("oracle_gap_to_bound", "same-window GPU balancedness / the valid bound, on the worst case",
               pooled="min", failed_case="zero"))
declare(Figure("replica_balancedness", "mean / max slot load (older published figure)", failed_case="zero"))
# Time: the call alone, median of repeats per case, against the baseline timed in the same run.
declare(Figure("runtime_ms", "rebalance call time, median over timed cases", higher_is_better=False,
               pooled="median", fmt=".2f", summary=True, timed=True))
declare(Figure("speedup", "baseline time / candidate time, same run; geometric mean over timed cases",
               pooled="geomean", fmt=".2f", summary=True, timed=True))
declare(Figure("adrs_score", "published evaluators' 90 bal + 5 min(0.002/t, 2) - (min(20t, 20) if t > 0.01)",
               pooled="derived", fmt=".2f", summary=True, timed=True,
               derive=lambda f: adrs_score(f["gpu_balancedness"], f["mean_runtime_s"])))
declare(Figure("combined_score", "(replica balancedness + 0.02 s / mean runtime) / 2 (older benchmark)",
               pooled="derived", timed=True,
               derive=lambda f: (f["replica_balancedness"] + 0.02 / f["mean_runtime_s"]) / 2
               if f["mean_runtime_s"] > 0 else math.nan))
# Placement quality beyond balance.
declare(Figure("copies_moved_share", "share of expert copies moved between consecutive windows",
               higher_is_better=False, summary=True))
declare(Figure("duplicate_gpu_share", "share of (layer, GPU) holding two copies of one expert",
               higher_is_better=False))
