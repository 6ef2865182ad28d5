"""Mutation operators: each turns one or two parents into a child candidate.

Every operator has ``name`` and ``propose(parents, rng, population) -> Candidate`` and
raises :class:`OperatorError` (one line) when it cannot make a child; the evolution loop
records that and carries on. ``parents[0]`` is the main parent; crossover also uses
``parents[1]``; ``population`` (:class:`Population`) is what the loop knows of everyone
evaluated so far, for operators that condition on it (the LLM's prompt).
"""

from __future__ import annotations

import ast
import json
import math
import os
import random
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from typing import Protocol

from evaluator.registry import Registry, is_config_type
from evaluator.shipped import here_or_shipped
from harness.candidate import Candidate
from harness.diffs import DiffError, make_child
from harness.knobs import KnobError, bake, declared_knobs, find_literals
from harness.redact import redact

# The evolve config's operators, by name; a config's options for one are checked against its fields.
OPERATORS: Registry = Registry("operator", internal=("name",))


@dataclass(frozen=True)
class Population:
    """What the evolution loop knows when it asks for a child: every evaluated candidate's summary
    (by id; figures as the leaderboard declares them) and the best few so far, best first."""

    metrics: dict[str, dict] = field(default_factory=dict)
    best: list[dict] = field(default_factory=list)


NO_POPULATION = Population()


class OperatorError(Exception):
    """The operator could not produce a child; the message says why."""


class Operator(Protocol):
    name: str

    def propose(self, parents: list[Candidate], rng: random.Random, population: Population = NO_POPULATION
                ) -> Candidate: ...


def _child_of(parent: Candidate, diff_text: str, name: str) -> Candidate:
    try:
        child, _ = make_child(parent, diff_text, name=name)
    except DiffError as exc:
        raise OperatorError(str(exc)) from None
    return child


@OPERATORS.register("diff_library")
@dataclass
class DiffLibrary:
    """Apply a diff drawn at random from a folder of diff files."""

    folder: str
    name: str = "diff_library"

    def propose(self, parents: list[Candidate], rng: random.Random, population: Population = NO_POPULATION
                ) -> Candidate:
        files = sorted(p for p in here_or_shipped(self.folder).iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise OperatorError(f"diff library {self.folder} is empty")
        chosen = rng.choice(files)
        child = _child_of(parents[0], chosen.read_text(), name=f"{parents[0].name}+{chosen.stem}")
        return child


@OPERATORS.register("knobs")
@dataclass
class KnobPerturbation:
    """Perturb declared knobs, else numeric literals, of the parent (``count`` of them)."""

    scale: float = 0.3
    count: int = 1
    name: str = "knobs"

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
        return Candidate(name=f"{parent.name}~{desc.replace(' ', '')}"[:120], source=source,
                         description=f"knob perturbation: {desc}", origin="knobs", parent_ids=(parent.id,))


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
        child = _child_of(host, diff, name=f"{host.name}x{donor.name}:{fname}"[:120])
        return replace(child, origin="crossover", description=f"{fname} from {donor.name} into {host.name}",
                       parent_ids=(host.id, donor.id))


PROMPT = """You improve Expert-Parallelism Load Balancer (EPLB) code. The objective is GPU balancedness
(mean / max GPU load, higher is better, at most the bound) at low runtime. Answer with one or more
SEARCH/REPLACE blocks against the parent program, in this exact form:

<<<<<<< SEARCH
(exact lines of the parent)
=======
(new lines)
>>>>>>> REPLACE

Parent program ({name}), metrics: {metrics}
```python
{source}
```

Best programs so far: {best}
"""


@OPERATORS.register("llm")
@dataclass
class LLMOperator:
    """Ask an OpenAI-compatible chat-completions endpoint for SEARCH/REPLACE diffs.

    The API key is read from the environment variable ``api_key_env`` (never stored).
    The prompt carries the parent's figures and the best programs so far, from ``population``.
    """

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.7
    timeout_s: float = 120.0
    name: str = "llm"

    def propose(self, parents: list[Candidate], rng: random.Random, population: Population = NO_POPULATION
                ) -> Candidate:
        parent = parents[0]
        metrics = population.metrics.get(parent.id, {})
        best = population.best
        prompt = PROMPT.format(name=parent.name, metrics=json.dumps(metrics), source=parent.source,
                               best=json.dumps(best))
        answer = self._complete(prompt)
        return replace(_child_of(parent, answer, name=f"{parent.name}+llm"), origin="llm")

    def _complete(self, prompt: str) -> str:
        body = json.dumps({
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.temperature,
        }).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.base_url.rstrip("/") + "/chat/completions", data=body,
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.load(response)
            content = payload["choices"][0]["message"]["content"]
        except urllib.error.HTTPError as exc:  # what the endpoint said, which may echo the request's headers
            said = " ".join(exc.read(300).decode(errors="replace").split())
            raise OperatorError(redact(f"LLM request failed: HTTP {exc.code}: {said}")) from None
        except (urllib.error.URLError, TimeoutError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise OperatorError(redact(f"LLM request failed: {exc.__class__.__name__}: {exc}")) from None
        if not isinstance(content, str) or not content.strip():
            raise OperatorError("the LLM answered no text (content null or empty)")
        return content


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
