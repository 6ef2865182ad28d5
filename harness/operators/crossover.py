"""The ``crossover`` operator: one primitive of a second parent, with what it needs, put into the first."""

from __future__ import annotations

import ast
import random
from dataclasses import dataclass, replace
from typing import ClassVar

from harness.candidate import Candidate
from harness.operators.base import NO_POPULATION, OPERATORS, OperatorError, Population, child_of, root_name


def _top_level_sources(source: str) -> tuple[dict[str, str], list[str], dict[str, set[str]]]:
    """Function/constant texts by name, import lines, and the global names each function reads."""
    tree = ast.parse(source)
    texts, imports, reads = {}, [], {}
    for node in tree.body:
        segment = ast.get_source_segment(source, node)
        if isinstance(node, ast.Import | ast.ImportFrom):
            imports.append(segment)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            texts[node.name] = segment
            reads[node.name] = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            for target in node.targets:
                texts[target.id] = segment
                reads[target.id] = set()
    return texts, imports, reads


CROSSABLE = ("balanced_packing", "replicate_experts", "balanced_packing_diverse")


@OPERATORS.register("crossover")
@dataclass
class Crossover:
    """Take one primitive (with the helpers and constants it uses) from the second parent."""

    name: str = "crossover"
    blocking: ClassVar[bool] = False

    def propose(self, parents: list[Candidate], rng: random.Random, population: Population = NO_POPULATION
                ) -> Candidate:
        if len(parents) < 2 or parents[0].id == parents[1].id:
            raise OperatorError("crossover needs two different parents")
        host, donor = parents[0], parents[1]
        texts, imports, reads = _top_level_sources(donor.source)
        host_texts, _, _ = _top_level_sources(host.source)
        choices = [f for f in CROSSABLE if f in texts and texts[f] != host_texts.get(f)]
        if not choices:
            raise OperatorError(f"{donor.name} has no primitive that differs from {host.name}'s")
        fname = rng.choice(choices)
        needed, frontier = [], [fname]
        while frontier:  # the function and, transitively, the donor's globals it reads
            name = frontier.pop()
            if name in needed:
                continue
            needed.append(name)
            frontier.extend(n for n in reads[name] if n in texts and n not in needed)
        bundle = "\n".join(imports) + "\n\n\n" + "\n\n\n".join(texts[n] for n in reversed(needed))
        diff = f"<<<<<<< SEARCH\n{texts[fname]}\n=======\n{bundle}\n>>>>>>> REPLACE\n"
        child = child_of(host, diff, name=f"{root_name(host.name)}+{root_name(donor.name)}.{fname}"[:120])
        return replace(child, origin="crossover", description=f"{fname} from {donor.name} into {host.name}",
                       parent_ids=(host.id, donor.id))
