"""The LLM's prompts, from template files a user can replace (``prompts: {system, user, feedback}``).

Templates are ``string.Template`` text: ``$name`` is filled in, ``$$`` is a dollar sign (code
braces need no escaping). A template that names an unknown field is refused when the config is
read, not in the middle of a run.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path

from evaluator.scoring import HISTORY_WINDOWS
from harness.candidate import Candidate
from harness.figures import FIGURES
from harness.population import Inspiration, Population

TEMPLATES = Path(__file__).with_name("templates")
FIELDS = {
    "system": ("fitness", "history_windows"),
    "user": ("fitness", "parent_name", "parent_figures", "parent_families", "parent_weakest", "parent_failures",
             "parent_code", "inspirations", "attempts"),
    "feedback": ("error", "closest"),
}


@dataclass(frozen=True)
class Prompts:
    """The three templates' texts: ``system`` (problem, contract, scoring), ``user`` (parent and
    population), ``feedback`` (why the last answer was not used)."""

    system: str
    user: str
    feedback: str

    @classmethod
    def load(cls, paths: dict | None = None) -> Prompts:
        """The shipped templates, each replaced by the file ``paths[kind]`` names; ValueError names a bad one."""
        paths = dict(paths or {})
        unknown = set(paths) - set(FIELDS)
        if unknown:
            raise ValueError(f"prompts: unknown template(s) {', '.join(sorted(unknown))}; known: {', '.join(FIELDS)}")
        texts = {}
        for kind, fields in FIELDS.items():
            path = Path(paths.get(kind, TEMPLATES / f"{kind}.md"))
            try:
                texts[kind] = path.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"prompts.{kind}: cannot read {path}: {exc.__class__.__name__}") from None
            try:
                string.Template(texts[kind]).substitute(dict.fromkeys(fields, ""))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"prompts.{kind} ({path}): unknown or malformed field {exc}; "
                                 f"known: {', '.join(fields)}") from None
        return cls(**texts)

    def messages(self, parent: Candidate, population: Population) -> list[dict]:
        """The chat of one proposal: the system prompt, then the parent and what the run knows."""
        row = population.metrics.get(parent.id, {})
        user = string.Template(self.user).substitute(
            fitness=population.fitness,
            parent_name=parent.name,
            parent_figures=_figures(row),
            parent_families=_families(population.parent_cases, population.fitness),
            parent_weakest=_weakest(population.parent_cases, population.fitness),
            parent_failures=_failures(population.parent_cases),
            parent_code=parent.source.rstrip(),
            inspirations=_inspirations(population.top, population.diverse) or "(none yet)",
            attempts=_attempts(population.attempts) or "(none yet)",
        )
        system = string.Template(self.system).substitute(fitness=population.fitness, history_windows=HISTORY_WINDOWS)
        return [{"role": "system", "content": system},
                {"role": "user", "content": user}]

    def feedback_message(self, error: str, closest: str | None) -> dict:
        closest_text = f"The closest region of the parent to your SEARCH text:\n```python\n{closest}\n```\n" \
            if closest else ""
        return {"role": "user", "content": string.Template(self.feedback).substitute(error=error,
                                                                                      closest=closest_text)}


def _number(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _figures(row: dict) -> str:
    """A program's summary figures (as :mod:`harness.figures` declares and formats them) and its failures."""
    shown = [f"{f.name} {format(row[f.name], f.fmt)}" for f in FIGURES.values()
             if f.summary and isinstance(row.get(f.name), int | float)]
    if row.get("failures") is not None:
        shown.append(f"failures {row['failures']}")
    return ", ".join(shown) or "(not scored yet)"


def _families(cases: list[dict], fitness: str) -> str:
    by_family: dict[str, list[float]] = {}
    for case in cases:
        if case.get(fitness) is not None:
            by_family.setdefault(case["family"], []).append(case[fitness])
    return ", ".join(f"{family} {sum(v) / len(v):.4f}" for family, v in sorted(by_family.items())) or "(none)"


def _weakest(cases: list[dict], fitness: str, k: int = 3) -> str:
    scored = sorted((c for c in cases if c.get(fitness) is not None), key=lambda c: c[fitness])[:k]
    return "; ".join(f"{c['case_name']} {c[fitness]:.4f} (same window {_number(c.get('oracle_' + fitness))})"
                     for c in scored) or "(none)"


def _failures(cases: list[dict]) -> str:
    failed = [c for c in cases if c.get("reason")]
    if not failed:
        return ""
    return "Failures: " + "; ".join(f"{c['case_name']}: {c['reason']}" for c in failed[:3]) + "\n"


def _inspirations(top: list[Inspiration], diverse: list[Inspiration]) -> str:
    parts = []
    for label, members in (("a top program", top), ("a different program", diverse)):
        for m in members:
            parts.append(f"### {label}: {m.name} ({_figures(m.figures)})\n```python\n{m.source.rstrip()}\n```")
    return "\n\n".join(parts)


def _attempts(attempts: list[dict]) -> str:
    lines = []
    for a in attempts:
        what = a.get("description") or a.get("operator", "")
        outcome = a.get("status", "")
        if a.get("fitness") is not None:
            outcome += f", fitness {a['fitness']:.4f}"
        if a.get("reason"):
            outcome += f": {a['reason']}"
        lines.append(f"- {what[:200]} -> {outcome[:300]}")
    return "\n".join(lines)


def as_text(messages: list[dict]) -> str:
    """A chat as stored text (one JSON list)."""
    return json.dumps(messages)
