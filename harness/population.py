"""What the evolution loop tells an operator when it asks for a child: plain data, safe across threads."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Inspiration:
    """One evaluated candidate as an operator sees it: id, name, source and figures."""

    candidate_id: str
    name: str
    source: str
    fitness: float | None
    figures: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Population:
    """What the evolution loop knows when it asks for a child (plain data: it may cross threads).

    ``metrics``: every evaluated candidate's summary row by id (figures as the leaderboard
    declares them). ``fitness``: the figure the loop maximises. ``parent_cases``: the main
    parent's per-case rows (family, preset, figures), weakest first. ``top``/``diverse``:
    archive members to learn from, best first / from other cells. ``attempts``: the latest
    proposals on the main parent and what became of them (operator, status, reason, fitness).
    """

    metrics: dict[str, dict] = field(default_factory=dict)
    fitness: str = "gpu_balancedness"
    parent_cases: list[dict] = field(default_factory=list)
    top: list[Inspiration] = field(default_factory=list)
    diverse: list[Inspiration] = field(default_factory=list)
    attempts: list[dict] = field(default_factory=list)
