"""The evolution loop: MAP-Elites archives on islands, weighted mutation operators, contained evaluation.

Each generation, every island selects parents from its archive (the island's best
with probability ``elite_prob``, else a random occupied cell; crossover's second parent
is any candidate that passed every case, for diversity), applies an operator
drawn by weight, and the children of all islands are evaluated together through
:func:`harness.runner.evaluate`. A child that fails any case is kept in the store with
its reason and never enters an archive. A child enters its island's archive when its
cell (the bucket of each feature axis) is empty or it beats the cell's occupant.
Every ``migration_interval`` generations each island's best is copied to the next
island. Every proposal and, after each generation, every archive member (the
population) is recorded in the store's ``evolution_events`` table and in
``events.jsonl``. State is saved after every generation, so ``--resume`` continues a run.
"""

from __future__ import annotations

import bisect
import json
import math
import random
import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from evaluator.registry import is_config_type
from evaluator.shipped import here_or_shipped
from evaluator.suites import Case, get_suite, private_cases
from harness import sandbox
from harness.candidate import Candidate, ContractError, discover
from harness.figures import FIGURES, get_figure
from harness.leaderboard import case_results, leaderboard
from harness.operators import OperatorError, Population, build_operators
from harness.redact import redact
from harness.runner import RunConfig, evaluate
from harness.store import Store

# Figures that need the timing phase.
_TIMED = {f.name for f in FIGURES.values() if f.timed}


class ConfigError(ValueError):
    pass


@dataclass
class EvolveConfig:
    """An evolve run, as read from YAML (keys are these field names)."""

    name: str
    parents: list[str]
    operators: dict
    suite: str = "smoke"
    # The figure selection maximises (harness.figures; negated when lower is better).
    fitness: str = "gpu_balancedness"
    # A deployment spec (slots=S,gpus=G,nodes=N[,groups=K][,group_local=...]) for every case of the suite.
    deployment: str | None = None
    # Fitness on the suite's private twin (seeds only this store knows): no program can
    # regenerate the windows it is scored on. False: the public, published seeds.
    private: bool = True
    seed: int = 0
    islands: int = 2
    children_per_island: int = 2
    max_evaluations: int = 20
    max_seconds: float | None = None
    migration_interval: int = 3
    elite_prob: float = 0.3
    # Feature axes: metric -> bucket edges. Runtime axes make cells (and so lineage) timing-dependent.
    features: dict = field(default_factory=lambda: {"gpu_balancedness": [0.7, 0.75, 0.8, 0.85, 0.9, 0.95],
                                                    "speedup": [0.5, 2.0, 10.0, 50.0]})
    jobs: int = 2
    timeout_s: float = 120.0
    memory_mb: int = 4096
    out: str = "results/evolve"


def load_config(path: str | Path) -> EvolveConfig:
    """Read and check an evolve config; :class:`ConfigError` says what and where."""
    try:
        raw = yaml.safe_load(here_or_shipped(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.__class__.__name__}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a mapping")
    known = set(EvolveConfig.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        config = EvolveConfig(**raw)
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    _check_types(path, raw)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", config.name) or ".." in config.name:
        raise ConfigError(f"{path}: name {config.name!r} must be a plain folder name (letters, digits, _ . -)")
    try:
        get_figure(config.fitness)
        suite_cases(config)
        build_operators(config.operators)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config


def suite_cases(config: EvolveConfig) -> list[Case]:
    """The public cases of the config's suite, on its deployment (DeploymentError if they do not fit)."""
    cases = get_suite(config.suite)
    return [c.with_deployment(config.deployment) for c in cases] if config.deployment else cases


# What each key's value must be (bool is not an int here, an int is a float).
_KEY_TYPES = {"name": str, "parents": list, "operators": dict, "suite": str, "fitness": str,
              "deployment": (str, type(None)),
              "private": bool, "seed": int,
              "islands": int, "children_per_island": int, "max_evaluations": int, "max_seconds": (float, type(None)),
              "migration_interval": int, "elite_prob": float, "features": dict, "jobs": int, "timeout_s": float,
              "memory_mb": int, "out": str}
_POSITIVE = ("islands", "children_per_island", "max_evaluations", "migration_interval", "jobs", "timeout_s",
             "memory_mb")


def _check_types(path: str | Path, raw: dict) -> None:
    """Refuse a value of the wrong type or range, naming the key, before anything is written."""
    for key, value in raw.items():
        want = _KEY_TYPES[key]
        wants = want if isinstance(want, tuple) else (want,)
        if not any(is_config_type(value, w) for w in wants):
            names = " or ".join("null" if w is type(None) else w.__name__ for w in wants)
            raise ConfigError(f"{path}: {key} must be {names}, got {type(value).__name__} {value!r}"[:300])
        if key in _POSITIVE and not 0 < value < math.inf:
            raise ConfigError(f"{path}: {key} must be positive, got {value!r}")
    if not 0 <= float(raw.get("elite_prob", 0.3)) <= 1:
        raise ConfigError(f"{path}: elite_prob must be between 0 and 1")
    if not all(isinstance(p, str) for p in raw.get("parents", [])):
        raise ConfigError(f"{path}: parents must be a list of candidate files or folders")
    for axis, edges in raw.get("features", {}).items():
        if not isinstance(edges, list) or not all(isinstance(e, int | float) for e in edges):
            raise ConfigError(f"{path}: features.{axis} must be a list of bucket edges (numbers)")
    for name, options in raw.get("operators", {}).items():
        if not isinstance(options, dict):
            raise ConfigError(f"{path}: operators.{name} must be a mapping of options")


@dataclass
class Member:
    candidate_id: str
    fitness: float


class Evolution:
    """One evolve run bound to a store; :meth:`run` performs it."""

    def __init__(self, config: EvolveConfig, store: Store, quiet: bool = True):
        self.config = config
        self.store = store
        self.quiet = quiet
        self.cases = suite_cases(config)
        if config.private:
            self.cases = private_cases(self.cases, store.suite_secret())
        self.operators = build_operators(config.operators)
        self.out = Path(config.out) / config.name
        self.rng = random.Random(config.seed)
        self.archives: list[dict[str, Member]] = [{} for _ in range(config.islands)]
        self.generation = 0
        self.evaluations = 0
        self.elapsed = 0.0
        self.history: list[dict] = []  # per generation and island: best and median fitness
        self.metrics: dict[str, dict] = {}
        self.public_fitness: float | None = None  # the best's on the public suite, when fitness is private

    # -- state ---------------------------------------------------------------------------
    @property
    def _state_path(self) -> Path:
        return self.out / "state.json"

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        state = {
            "generation": self.generation,
            "evaluations": self.evaluations,
            "elapsed": self.elapsed,
            "rng": _jsonable(self.rng.getstate()),
            "archives": [{cell: asdict(m) for cell, m in a.items()} for a in self.archives],
            "history": self.history,
            "metrics": self.metrics,
        }
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self._state_path)  # atomic: a kill never leaves half a state

    def load(self) -> None:
        state = json.loads(self._state_path.read_text())
        self.generation, self.evaluations, self.elapsed = state["generation"], state["evaluations"], state["elapsed"]
        self.rng.setstate(_tupled(state["rng"]))
        self.archives = [{c: Member(**m) for c, m in a.items()} for a in state["archives"]]
        self.history, self.metrics = state["history"], state["metrics"]

    # -- evaluation ------------------------------------------------------------------------
    def _evaluate(self, candidates: list[Candidate], cases: list[Case] | None = None) -> dict[str, dict]:
        """Summary row (leaderboard figures) of each candidate; failed ones have failures > 0."""
        cases = self.cases if cases is None else cases
        timed = bool(_TIMED & ({self.config.fitness} | set(self.config.features)))
        run_config = RunConfig(
            limits=sandbox.Limits(timeout_s=self.config.timeout_s, memory_mb=self.config.memory_mb),
            jobs=self.config.jobs, repeats=3, quiet=self.quiet, time_runs=timed,
        )
        report = evaluate(self.store, candidates, cases, run_config, command=f"evolve {self.config.name}",
                          suite=self.config.suite)
        table = leaderboard(case_results(self.store, [c.key for c in cases], report.candidate_ids,
                                         report.baseline_id))
        rows = {}
        for row in table.to_dict("records"):
            rows[row["candidate_id"]] = {k: (None if v != v else v) for k, v in row.items()
                                         if isinstance(v, int | float | str) or v is None}
        return rows

    def fitness_of(self, row: dict) -> float | None:
        """The config's fitness figure of a summary row, negated when lower is better (None if missing)."""
        value = row.get(self.config.fitness)
        if value is None:
            return None
        return value if get_figure(self.config.fitness).higher_is_better else -value

    def _cell(self, row: dict) -> str:
        parts = []
        for metric, edges in self.config.features.items():
            value = row.get(metric)
            parts.append(str(bisect.bisect(edges, value) if value is not None else -1))
        return ",".join(parts)

    def _offer(self, island: int, candidate_id: str, row: dict) -> bool:
        if row["failures"]:
            return False
        cell = self._cell(row)
        current = self.archives[island].get(cell)
        fitness = self.fitness_of(row)
        if fitness is not None and (current is None or fitness > current.fitness):
            self.archives[island][cell] = Member(candidate_id, fitness)
            return True
        return False

    # -- selection ---------------------------------------------------------------------------
    def _best(self, island: int) -> Member:
        return max(self.archives[island].values(), key=lambda m: (m.fitness, m.candidate_id))

    def _select(self, island: int) -> Candidate:
        archive = self.archives[island]
        if self.rng.random() < self.config.elite_prob:
            member = self._best(island)
        else:
            member = archive[self.rng.choice(sorted(archive))]
        return self.store.get_candidate(member.candidate_id)

    def _mate(self, first: Candidate) -> Candidate:
        """A second parent for crossover: any other candidate that passed every case, archived or not."""
        pool = sorted(cid for cid, row in self.metrics.items() if not row["failures"] and cid != first.id)
        return self.store.get_candidate(self.rng.choice(pool)) if pool else first

    # -- the loop ----------------------------------------------------------------------------
    def seed_population(self) -> None:
        parents: list[Candidate] = []
        for spec in self.config.parents:
            try:
                parents.extend(discover(spec))
            except ContractError as exc:
                raise ConfigError(str(exc)) from None
        rows = self._evaluate(parents)
        self.metrics.update(rows)
        for parent in parents:
            for island in range(self.config.islands):
                self._offer(island, parent.id, rows[parent.id])
        if not any(self.archives):
            raise ConfigError("no parent passed every case: nothing to evolve from")
        self.save()

    def _budget_left(self) -> bool:
        if self.evaluations >= self.config.max_evaluations:
            return False
        return self.config.max_seconds is None or self.elapsed < self.config.max_seconds

    def step(self) -> None:
        """One generation: propose on every island, evaluate together, update archives."""
        start = time.monotonic()
        proposals: list[tuple[int, str, Candidate]] = []
        log = []
        for island in range(self.config.islands):
            if not self.archives[island]:
                continue
            for _ in range(self.config.children_per_island):
                operator = self.rng.choices([o for o, _ in self.operators], [w for _, w in self.operators])[0]
                first = self._select(island)
                parents = [first, self._mate(first)]
                try:
                    child = operator.propose(parents, self.rng, Population(self.metrics, self._best_summaries()))
                except (OperatorError, RecursionError, MemoryError) as exc:  # the parser's limits too
                    log.append({"island": island, "operator": operator.name, "status": "rejected",
                                "reason": redact(str(exc) or exc.__class__.__name__),
                                "parents": [p.id for p in parents]})
                    continue
                proposals.append((island, operator.name, child))
        fresh = [c for _, _, c in proposals if c.id not in self.metrics]
        unique = list({c.id: c for c in fresh}.values())
        unique = unique[: max(0, self.config.max_evaluations - self.evaluations)]
        if unique:
            self.metrics.update(self._evaluate(unique))
            self.evaluations += len(unique)
        for island, op_name, child in proposals:
            row = self.metrics.get(child.id)
            if row is None:
                continue
            accepted = self._offer(island, child.id, row)
            log.append({"island": island, "operator": op_name, "candidate_id": child.id, "name": child.name,
                        "parents": list(child.parent_ids), "fitness": self.fitness_of(row),
                        "failures": row["failures"], "status": "accepted" if accepted else
                        ("failed" if row["failures"] else "not better")})
        self.generation += 1
        if self.config.islands > 1 and self.generation % self.config.migration_interval == 0:
            bests = [self._best(i) if self.archives[i] else None for i in range(self.config.islands)]
            for i, best in enumerate(bests):
                if best is not None:
                    target = (i + 1) % self.config.islands
                    self._offer(target, best.candidate_id, self.metrics[best.candidate_id])
        for island, archive in enumerate(self.archives):
            # The population: every archive member after this generation.
            log.extend({"island": island, "operator": "archive", "candidate_id": m.candidate_id, "status": "archived",
                        "reason": f"cell {cell}", "fitness": m.fitness} for cell, m in sorted(archive.items()))
            fits = [m.fitness for m in archive.values()]
            self.history.append({"generation": self.generation, "island": island, "best": max(fits),
                                 "median": statistics.median(fits), "cells": len(fits)})
        self.elapsed += time.monotonic() - start
        self.store.add_evolution_events(self.config.name, self.generation, log)
        with open(self.out / "events.jsonl", "a") as f:
            for entry in log:
                f.write(json.dumps({"generation": self.generation, **entry}) + "\n")
        self.save()

    def _best_summaries(self, k: int = 3) -> list[dict]:
        members = sorted({m.candidate_id: m for a in self.archives for m in a.values()}.values(),
                         key=lambda m: -m.fitness)[:k]
        return [{"name": self.metrics[m.candidate_id].get("candidate"), "fitness": m.fitness}
                for m in members]

    def run(self, resume: bool = False) -> Member:
        if resume and self._state_path.exists():
            self.load()
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "events.jsonl").write_text("")
            self.seed_population()
        idle = 0
        while self._budget_left() and idle < 20:  # stop when operators keep producing nothing new
            before = self.evaluations
            self.step()
            idle = idle + 1 if self.evaluations == before else 0
        best = max((m for a in self.archives for m in a.values()), key=lambda m: (m.fitness, m.candidate_id))
        if self.config.private:  # the published figure: the best on the public suite, beside the others
            row = self._evaluate([self.store.get_candidate(best.candidate_id)], suite_cases(self.config))
            self.public_fitness = self.fitness_of(row[best.candidate_id])
        self.write_outputs(best)
        return best

    # -- outputs -------------------------------------------------------------------------------
    def lineage(self, candidate_id: str) -> list[dict]:
        """The ancestry of ``candidate_id``, child first, following first parents."""
        chain, seen = [], set()
        current: str | None = candidate_id
        while current and current not in seen:
            seen.add(current)
            cand = self.store.get_candidate(current)
            row = self.metrics.get(current, {})
            chain.append({"id": current, "name": cand.name, "origin": cand.origin, "parents": list(cand.parent_ids),
                          "description": cand.description, "gpu_balancedness": row.get("gpu_balancedness")})
            current = cand.parent_ids[0] if cand.parent_ids else None
        return chain

    def write_outputs(self, best: Member) -> None:
        from harness.plots import plot_progress

        candidate = self.store.get_candidate(best.candidate_id)
        (self.out / "best.py").write_text(candidate.source)
        (self.out / "lineage.json").write_text(json.dumps(self.lineage(best.candidate_id), indent=1))
        if self.history:
            plot_progress(self.history, self.out / "progress.png")


def _jsonable(obj):
    return [_jsonable(x) for x in obj] if isinstance(obj, tuple | list) else obj


def _tupled(obj):
    return tuple(_tupled(x) for x in obj) if isinstance(obj, list) else obj
