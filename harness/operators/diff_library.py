"""The ``diff_library`` operator: a diff file drawn from a folder, applied to the parent."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

from evaluator.shipped import here_or_shipped
from harness.candidate import Candidate
from harness.operators.base import NO_POPULATION, OPERATORS, OperatorError, Population, child_of, root_name


@OPERATORS.register("diff_library")
@dataclass
class DiffLibrary:
    """Apply a diff drawn at random from a folder of diff files."""

    folder: str
    name: str = "diff_library"
    blocking: ClassVar[bool] = False

    def propose(self, parents: list[Candidate], rng: random.Random, population: Population = NO_POPULATION
                ) -> Candidate:
        files = sorted(p for p in here_or_shipped(self.folder).iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise OperatorError(f"diff library {self.folder} is empty")
        chosen = rng.choice(files)
        child = child_of(parents[0], chosen.read_text(), name=f"{root_name(parents[0].name)}+{chosen.stem}")
        return child
