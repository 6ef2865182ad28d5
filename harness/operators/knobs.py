"""The ``knobs`` operator: declared knobs (else numeric literals) of the parent, perturbed."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import ClassVar

from harness.candidate import Candidate
from harness.knobs import KnobError, bake, declared_knobs, find_literals
from harness.operators.base import NO_POPULATION, OPERATORS, OperatorError, Population, root_name


@OPERATORS.register("knobs")
@dataclass
class KnobPerturbation:
    """Perturb declared knobs, else numeric literals, of the parent (``count`` of them)."""

    scale: float = 0.3
    count: int = 1
    name: str = "knobs"
    blocking: ClassVar[bool] = False

    def propose(self, parents: list[Candidate], rng: random.Random, population: Population = NO_POPULATION
                ) -> Candidate:
        parent = parents[0]
        try:
            knobs = declared_knobs(parent.source) or find_literals(parent.source)
        except (KnobError, SyntaxError) as exc:
            raise OperatorError(f"no knobs: {exc}") from None
        if not knobs:
            raise OperatorError(f"{parent.name} has no knob or numeric literal to perturb")
        values = {}
        for knob in rng.sample(knobs, min(self.count, len(knobs))):
            factor = math.exp(rng.gauss(0.0, self.scale))
            value = min(knob.high, max(knob.low, knob.default * factor if knob.default else knob.low + factor - 1))
            if knob.kind == "int":
                value = int(round(value))
                if value == knob.default:  # an unchanged int would make the same child; step inside the range
                    steps = [step for step in (-1, 1) if knob.low <= value + step <= knob.high]
                    value += rng.choice(steps) if steps else 0
            values[knob.name] = value
        source = bake(parent.source, knobs, values)
        if source == parent.source:
            raise OperatorError("perturbation left every value unchanged")
        desc = ", ".join(f"{k}={v:g}" for k, v in values.items())
        return Candidate(name=f"{root_name(parent.name)}~{desc.replace(' ', '')}"[:120], source=source,
                         description=f"knob perturbation: {desc}", origin="knobs", parent_ids=(parent.id,))
