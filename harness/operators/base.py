"""The operator interface: what every mutation operator is, and how a config builds them.

Every operator has ``name`` and ``propose(parents, rng, population) -> Candidate`` and
raises :class:`OperatorError` (one line) when it cannot make a child; the evolution loop
records that and carries on. ``parents[0]`` is the main parent; crossover also uses
``parents[1]``; ``population`` (:class:`Population`) is what the loop knows when it asks,
for operators that condition on it (the LLM's prompt). An operator whose ``blocking`` is
true waits on a network: the loop runs it in a thread, several at once, while children
that already exist are evaluated.
"""

from __future__ import annotations

import random
from typing import Protocol

from evaluator.registry import Registry, is_config_type
from harness.candidate import Candidate
from harness.diffs import DiffError, make_child
from harness.population import Population

# The evolve config's operators, by name; a config's options for one are checked against its fields.
OPERATORS: Registry = Registry("operator", internal=("name",))


NO_POPULATION = Population()


class OperatorError(Exception):
    """The operator could not produce a child; the message says why."""


class EndpointError(OperatorError):
    """The operator's endpoint gave no answer (after its retries): a run stops when these keep coming."""


class Operator(Protocol):
    name: str
    blocking: bool

    def propose(self, parents: list[Candidate], rng: random.Random, population: Population = NO_POPULATION
                ) -> Candidate: ...


def child_of(parent: Candidate, diff_text: str, name: str) -> Candidate:
    """The child ``diff_text`` makes of ``parent``, or :class:`OperatorError` saying why none."""
    try:
        child, _ = make_child(parent, diff_text, name=name)
    except DiffError as exc:
        raise OperatorError(str(exc)) from None
    return child


def root_name(name: str) -> str:
    """A child's name starts from its lineage's root, so names do not grow with every generation."""
    for mark in ("~", "+", "@"):
        name = name.split(mark)[0]
    return name


def build_operators(spec: dict) -> list[tuple[Operator, float]]:
    """Operators and weights from the ``operators`` section of an evolve config (options checked)."""
    out = []
    for name, options in spec.items():
        weight = options.get("weight", 1.0)
        if not is_config_type(weight, float):
            raise ValueError(f"operator {name!r}: weight must be a number, got {weight!r}")
        operator = OPERATORS.create(name, options, ignore=("weight",))
        if weight > 0:
            out.append((operator, float(weight)))
    if not out:
        raise ValueError("no operator has a positive weight")
    return out
