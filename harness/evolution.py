"""The evolution loop: MAP-Elites archives on islands, weighted operators, steady state, contained evaluation.

There is no generation barrier. Each step (a "generation" in the records) tops up the
proposals: the operators that wait on a network (the LLM's) run in threads, up to
``max_concurrent`` at once, while the instant ones (knobs, diff library, crossover) make up
to ``islands * children_per_island`` children on the spot; a parent is the island's best
with probability ``elite_prob``, else a random occupied cell (crossover's second parent is
any candidate that passed every case). The step then evaluates every child that exists by
now, through :func:`harness.runner.evaluate`, while the calls in flight go on; a child enters
its island's archive when its result arrives, if its cell (the bucket of each feature axis)
is empty or it beats the occupant. Before that:

* a child whose policy code equals an evaluated one's (:mod:`harness.novelty`) is recorded
  as a ``duplicate`` and not evaluated;
* with ``cascade``, a child is scored on the cheap suite first and goes on to the main suite
  only when it reaches ``min_ratio_to_parent`` of its parent's fitness there;
* a child that fails evaluation is sent back to the operator that wrote it when the operator
  can revise it (the LLM's, with the failure), up to its ``feedback_attempts``.

Every ``migration_interval`` steps each island's best is copied to the next island. Every
proposal, LLM call and (after each step) archive member is recorded in the store and in
``events.jsonl``. State is saved after every step, so ``--resume`` continues a run (proposals
in flight when it stopped are made anew).
"""

from __future__ import annotations

import bisect
import concurrent.futures as cf
import json
import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evaluator.suites import Case, private_cases
from harness import sandbox
from harness.candidate import Candidate, ContractError, discover
from harness.diffs import SOURCE_LOCK
from harness.evolve_config import ConfigError, EvolveConfig, cascade_cases, load_config, suite_cases
from harness.executors import Executor, LocalExecutor, open_executor
from harness.figures import FIGURES, get_figure
from harness.leaderboard import case_results, leaderboard
from harness.novelty import policy_fingerprint
from harness.operators import EndpointError, Inspiration, Operator, OperatorError, Population, build_operators
from harness.redact import redact
from harness.runner import RunConfig, evaluate
from harness.store import Store

__all__ = ["ConfigError", "Evolution", "EvolutionError", "EvolveConfig", "load_config"]

# Figures that need the timing phase.
_TIMED = {f.name for f in FIGURES.values() if f.timed}
# Consecutive failed calls of blocking operators (nothing else made) after which the run stops.
_FAILED_CALLS_TO_STOP = 8


class EvolutionError(RuntimeError):
    """The run could not go on (e.g. the LLM endpoint keeps failing); the message is one line."""


@dataclass
class Member:
    candidate_id: str
    fitness: float


@dataclass
class Proposal:
    """A child on its way: where it came from, and (once made) the child."""

    island: int
    operator: Operator
    parents: list[Candidate]
    child: Candidate | None = None
    future: cf.Future | None = field(default=None, repr=False)


class Evolution:
    """One evolve run bound to a store; :meth:`run` performs it."""

    def __init__(self, config: EvolveConfig, store: Store, quiet: bool = True):
        self.config = config
        self.executor: Executor = LocalExecutor()  # the cluster's while run() runs on one
        self.store = store
        self.quiet = quiet
        self.cases = suite_cases(config)
        self.cascade = cascade_cases(config)
        if config.private:
            secret = store.suite_secret()
            self.cases = private_cases(self.cases, secret)
            self.cascade = private_cases(self.cascade, secret) if self.cascade else []
        self.operators = build_operators(config.operators)
        self.out = Path(config.out) / config.name
        self.rng = random.Random(config.seed)
        self.archives: list[dict[str, Member]] = [{} for _ in range(config.islands)]
        self.generation = 0
        self.evaluations = 0
        self.elapsed = 0.0
        self.turn = 0  # proposals made: the island of the next one
        self.waited_s = 0.0  # time with nothing to evaluate, waiting on operator threads (idle CPU)
        self.history: list[dict] = []  # per generation and island: best and median fitness
        self.metrics: dict[str, dict] = {}
        self.fingerprints: dict[str, str] = {}  # policy fingerprint -> the first candidate evaluated with it
        self.cascade_fitness: dict[str, float | None] = {}  # fitness on the cascade suite, by candidate
        self.attempts: dict[str, list[dict]] = {}  # by parent: the latest proposals and their outcomes
        self.public_fitness: float | None = None  # the best's on the public suite, when fitness is private
        self._cases_cache: dict[str, list[dict]] = {}
        self._failed_calls = 0
        self._last_rejection: str | None = None

    # -- state ---------------------------------------------------------------------------
    @property
    def _state_path(self) -> Path:
        return self.out / "state.json"

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        events = self.out / "events.jsonl"
        state = {
            "generation": self.generation, "evaluations": self.evaluations, "elapsed": self.elapsed,
            "turn": self.turn, "waited_s": self.waited_s, "rng": _jsonable(self.rng.getstate()),
            "archives": [{cell: asdict(m) for cell, m in a.items()} for a in self.archives],
            "history": self.history, "metrics": self.metrics, "fingerprints": self.fingerprints,
            "cascade_fitness": self.cascade_fitness, "attempts": self.attempts, "llm_totals": self.llm_totals,
            "events_bytes": events.stat().st_size if events.exists() else 0,
        }
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self._state_path)  # atomic: a kill never leaves half a state

    def load(self) -> None:
        state = json.loads(self._state_path.read_text())
        self.generation, self.evaluations, self.elapsed = state["generation"], state["evaluations"], state["elapsed"]
        self.turn, self.waited_s = state.get("turn", 0), state.get("waited_s", 0.0)
        self.rng.setstate(_tupled(state["rng"]))
        self.archives = [{c: Member(**m) for c, m in a.items()} for a in state["archives"]]
        self.history, self.metrics = state["history"], state["metrics"]
        self.fingerprints = state.get("fingerprints", {})
        self.cascade_fitness = state.get("cascade_fitness", {})
        self.attempts = state.get("attempts", {})
        for operator in self._ledgered():
            operator.ledger.restore(state.get("llm_totals", {}))
        # A run killed after recording a step but before saving it redoes that step: forget its events.
        if "events_bytes" in state:
            with open(self.out / "events.jsonl", "r+b") as f:
                f.truncate(state["events_bytes"])
        self.store.delete_evolution_events(self.config.name, after_generation=self.generation)

    # -- evaluation ------------------------------------------------------------------------
    def _evaluate(self, candidates: list[Candidate], cases: list[Case] | None = None) -> dict[str, dict]:
        """Summary row (leaderboard figures) of each candidate; failed ones have failures > 0."""
        cases = self.cases if cases is None else cases
        timed = bool(_TIMED & ({self.config.fitness} | set(self.config.features)))
        run_config = RunConfig(
            limits=sandbox.Limits(timeout_s=self.config.timeout_s, memory_mb=self.config.memory_mb),
            jobs=self.config.jobs, repeats=3, quiet=self.quiet, time_runs=timed, time_per_preset=True,
            executor=self.executor,
        )
        report = evaluate(self.store, candidates, cases, run_config, command=f"evolve {self.config.name}",
                          suite=self.config.suite)
        frame = case_results(self.store, [c.key for c in cases], report.candidate_ids, report.baseline_id)
        if cases is self.cases:
            for cid, rows in frame.groupby("candidate_id"):
                self._cases_cache[cid] = _case_rows(rows, self.config.fitness)
        rows = {}
        for row in leaderboard(frame).to_dict("records"):
            rows[row["candidate_id"]] = {k: (None if v != v else v) for k, v in row.items()
                                         if isinstance(v, int | float | str) or v is None}
        return rows

    def _cases_of(self, candidate_id: str) -> list[dict]:
        """The candidate's per-case rows on the main suite, weakest first (from the store on a resumed run)."""
        if candidate_id not in self._cases_cache:
            frame = self.store.evaluations_frame([candidate_id], [c.key for c in self.cases])
            self._cases_cache[candidate_id] = [] if frame.empty else _case_rows(frame, self.config.fitness)
        return self._cases_cache[candidate_id]

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

    def _population(self, operator: Operator, parent: Candidate) -> Population:
        """What ``operator`` is told: everyone's figures and, when it reads them, the parent's cases,
        top and diverse archive members with their code, and the latest attempts on the parent."""
        shown = getattr(operator, "inspirations", 0)
        if not shown:
            return Population(metrics=self.metrics, fitness=self.config.fitness)
        members = sorted({m.candidate_id: m for a in self.archives for m in a.values()
                          if m.candidate_id != parent.id}.values(), key=lambda m: (-m.fitness, m.candidate_id))
        top, rest = members[:shown], members[shown:]
        diverse = self.rng.sample(rest, min(shown, len(rest)))

        def inspiration(m: Member) -> Inspiration:
            candidate = self.store.get_candidate(m.candidate_id)
            return Inspiration(m.candidate_id, candidate.name, candidate.source, m.fitness,
                               self.metrics[m.candidate_id])

        recent = self.attempts.get(parent.id, [])[-getattr(operator, "recent_attempts", 0):]
        return Population(metrics=dict(self.metrics), fitness=self.config.fitness,
                          parent_cases=self._cases_of(parent.id), top=[inspiration(m) for m in top],
                          diverse=[inspiration(m) for m in diverse], attempts=list(recent))

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
            self._remember_policy(parent)
            for island in range(self.config.islands):
                self._offer(island, parent.id, rows[parent.id])
        if not any(self.archives):
            raise ConfigError("no parent passed every case: nothing to evolve from")
        self.save()

    def _remember_policy(self, candidate: Candidate) -> None:
        fingerprint = _fingerprint(candidate)
        if fingerprint:
            self.fingerprints.setdefault(fingerprint, candidate.id)

    def _ledgered(self) -> list:
        return [op for op, _ in self.operators if hasattr(op, "ledger")]

    @property
    def llm_totals(self) -> dict:
        """The run's LLM account: calls, failed calls, tokens, cost and time in calls."""
        totals: dict = {}
        for operator in self._ledgered():
            for key, value in operator.ledger.totals().items():
                totals[key] = totals.get(key, 0) + value
        return totals

    def _budget_left(self) -> bool:
        if self.evaluations >= self.config.max_evaluations:
            return False
        if self.config.max_cost_usd is not None and self.llm_totals.get("cost_usd", 0.0) >= self.config.max_cost_usd:
            return False
        return self.config.max_seconds is None or self.elapsed < self.config.max_seconds

    def _top_up(self, pool: cf.ThreadPoolExecutor, inflight: list[Proposal], log: list[dict]) -> list[Proposal]:
        """New proposals: instant operators' children now, blocking ones submitted to ``pool``."""
        ready: list[Proposal] = []
        made = 0
        per_step = self.config.islands * self.config.children_per_island
        blocking_any = any(op.blocking for op, _ in self.operators)
        while made < per_step or (blocking_any and len(inflight) < self.config.max_concurrent):
            if self.evaluations + len(ready) + len(inflight) >= self.config.max_evaluations:
                break
            island = (self.turn // self.config.children_per_island) % self.config.islands
            if not self.archives[island]:
                self.turn += self.config.children_per_island
                continue
            operator = self.rng.choices([o for o, _ in self.operators], [w for _, w in self.operators])[0]
            if operator.blocking and len(inflight) >= self.config.max_concurrent or \
                    not operator.blocking and made >= per_step:
                break
            self.turn += 1
            first = self._select(island)
            parents = [first, self._mate(first)]
            population = self._population(operator, first)
            proposal = Proposal(island, operator, parents)
            if operator.blocking:
                rng = random.Random(self.rng.getrandbits(64))  # threads must not share the loop's generator
                proposal.future = pool.submit(operator.propose, parents, rng, population)
                inflight.append(proposal)
                continue
            made += 1
            try:
                with SOURCE_LOCK:
                    proposal.child = operator.propose(parents, self.rng, population)
            except (OperatorError, RecursionError, MemoryError) as exc:  # the parser's limits too
                self._reject(proposal, exc, log)
                continue
            ready.append(proposal)
        return ready

    def _reject(self, proposal: Proposal, exc: BaseException, log: list[dict]) -> None:
        reason = redact(str(exc) or exc.__class__.__name__)
        self._last_rejection = reason
        entry = {"island": proposal.island, "operator": proposal.operator.name, "status": "rejected",
                 "reason": reason, "parents": [p.id for p in proposal.parents]}
        log.append(entry)
        self._attempted(proposal.parents[0].id, entry)

    def _attempted(self, parent_id: str, entry: dict) -> None:
        kept = {k: entry.get(k) for k in ("operator", "description", "status", "reason", "fitness")}
        self.attempts.setdefault(parent_id, []).append(kept)
        del self.attempts[parent_id][:-8]

    def _collect(self, inflight: list[Proposal], log: list[dict], wait: bool) -> list[Proposal]:
        """Proposals of blocking operators that finished (waiting for one when ``wait``), in submission order."""
        if wait and inflight:
            started = time.monotonic()
            cf.wait([p.future for p in inflight], return_when=cf.FIRST_COMPLETED)
            self.waited_s += time.monotonic() - started
        done = [p for p in inflight if p.future.done()]
        for p in done:
            inflight.remove(p)
        ready = []
        for p in done:
            try:
                p.child = p.future.result()
            except (OperatorError, RecursionError, MemoryError) as exc:
                self._failed_calls = self._failed_calls + 1 if isinstance(exc, EndpointError) else 0
                self._reject(p, exc, log)
                continue
            self._failed_calls = 0
            ready.append(p)
        return ready

    def step(self, pool: cf.ThreadPoolExecutor, inflight: list[Proposal]) -> None:
        """One step: top up proposals, evaluate every child that exists, update archives, record."""
        start = time.monotonic()
        log: list[dict] = []
        ready = self._top_up(pool, inflight, log)
        ready += self._collect(inflight, log, wait=not ready and not log)
        fresh = self._screen(ready, log)
        if fresh:
            self._evaluate_children(fresh, log, pool, inflight)
        self.generation += 1
        self._migrate()
        for island, archive in enumerate(self.archives):
            # The population: every archive member after this step.
            log.extend({"island": island, "operator": "archive", "candidate_id": m.candidate_id, "status": "archived",
                        "reason": f"cell {cell}", "fitness": m.fitness} for cell, m in sorted(archive.items()))
            fits = [m.fitness for m in archive.values()]
            if fits:
                self.history.append({"generation": self.generation, "island": island, "best": max(fits),
                                     "median": statistics.median(fits), "cells": len(fits)})
        self.elapsed += time.monotonic() - start
        self._record(log)
        self.save()

    def _screen(self, ready: list[Proposal], log: list[dict]) -> list[Proposal]:
        """The proposals whose child is evaluated now (within the budget); the others are logged as duplicates."""
        fresh, seen = [], set()
        room = max(0, self.config.max_evaluations - self.evaluations)
        for p in ready:
            child = p.child
            if child.id in self.metrics or child.id in seen:
                fingerprint, same = None, child.id
            else:
                fingerprint = _fingerprint(child)
                same = self.fingerprints.get(fingerprint) if fingerprint and self.config.novelty else None
            if same is None:
                if len(fresh) < room:  # over the budget, a child is dropped (and not remembered as evaluated)
                    seen.add(child.id)
                    fresh.append(p)
                    if fingerprint:
                        self.fingerprints.setdefault(fingerprint, child.id)
                continue
            original = self.metrics.get(same, {}).get("candidate") or same
            entry = {"island": p.island, "operator": p.operator.name, "candidate_id": child.id, "name": child.name,
                     "parents": list(child.parent_ids), "status": "duplicate", "description": child.description,
                     "reason": f"same policy as {original} ({same}): not evaluated"}
            self.store.add_candidate(child)
            log.append(entry)
            self._attempted(p.parents[0].id, entry)
        return fresh

    def _evaluate_children(self, fresh: list[Proposal], log: list[dict], pool: cf.ThreadPoolExecutor,
                           inflight: list[Proposal]) -> None:
        children = [p.child for p in fresh]
        stopped: dict[str, str] = {}
        if self.cascade:
            stopped = self._cascade(fresh)
        go_on = [c for c in children if c.id not in stopped]
        rows = self._evaluate(go_on) if go_on else {}
        self.metrics.update(rows)
        self.evaluations += len(children)
        for p in fresh:
            child = p.child
            entry = {"island": p.island, "operator": p.operator.name, "candidate_id": child.id, "name": child.name,
                     "parents": list(child.parent_ids), "description": child.description}
            if child.id in stopped:
                entry |= {"status": "cascade stopped", "reason": stopped[child.id],
                          "fitness": self.cascade_fitness.get(child.id)}
            else:
                row = rows[child.id]
                accepted = self._offer(p.island, child.id, row)
                entry |= {"fitness": self.fitness_of(row), "failures": row["failures"],
                          "status": "accepted" if accepted else ("failed" if row["failures"] else "not better")}
                if row["failures"]:
                    entry["reason"] = self._failure_of(child.id)
                    self._revise(p, entry["reason"], pool, inflight)
            log.append(entry)
            self._attempted(p.parents[0].id, entry)

    def _failure_of(self, candidate_id: str) -> str:
        failed = [c for c in self._cases_of(candidate_id) if c.get("reason")]
        return f"{failed[0]['case_name']}: {failed[0]['reason']}" if failed else "failed a case"

    def _revise(self, proposal: Proposal, reason: str, pool: cf.ThreadPoolExecutor, inflight: list[Proposal]) -> None:
        """Send a child that failed evaluation back to its operator, when that operator can revise it."""
        operator = proposal.operator
        if not getattr(operator, "can_revise", lambda _: False)(proposal.child):
            return
        rng = random.Random(self.rng.getrandbits(64))
        revision = Proposal(proposal.island, operator, proposal.parents)
        revision.future = pool.submit(operator.revise, proposal.child, reason, rng)
        inflight.append(revision)

    def _cascade(self, fresh: list[Proposal]) -> dict[str, str]:
        """Score children (and, once, their parents) on the cascade suite; why each stopped child stopped."""
        ratio = self.config.cascade.get("min_ratio_to_parent", 1.0)
        parents = {p.parents[0].id: p.parents[0] for p in fresh if p.parents[0].id not in self.cascade_fitness}
        rows = self._evaluate([p.child for p in fresh] + list(parents.values()), self.cascade)
        for cid, row in rows.items():
            self.cascade_fitness[cid] = None if row["failures"] else row.get(self.config.fitness)
        higher = get_figure(self.config.fitness).higher_is_better
        stopped = {}
        for p in fresh:
            mine, theirs = self.cascade_fitness.get(p.child.id), self.cascade_fitness.get(p.parents[0].id)
            if mine is None:
                stopped[p.child.id] = f"failed on the cascade suite {self.config.cascade['suite']!r}"
            elif theirs is not None and not (mine >= ratio * theirs if higher else mine <= theirs / ratio):
                stopped[p.child.id] = (f"{self.config.fitness} {mine:.4f} on {self.config.cascade['suite']!r}, "
                                       f"below {ratio:g} x the parent's {theirs:.4f}")
        return stopped

    def _migrate(self) -> None:
        if self.config.islands > 1 and self.generation % self.config.migration_interval == 0:
            bests = [self._best(i) if self.archives[i] else None for i in range(self.config.islands)]
            for i, best in enumerate(bests):
                if best is not None:
                    target = (i + 1) % self.config.islands
                    self._offer(target, best.candidate_id, self.metrics[best.candidate_id])

    def _record(self, log: list[dict]) -> None:
        calls = [c for op in self._ledgered() for c in op.ledger.drain()]
        self.store.add_evolution_events(self.config.name, self.generation, log)
        if calls:
            self.store.add_llm_calls(self.config.name, calls)
        with open(self.out / "events.jsonl", "a") as f:
            for entry in log:
                f.write(json.dumps({"generation": self.generation, **entry}) + "\n")
            for call in calls:  # prompts and answers are in the store only
                shown = {k: v for k, v in call.items() if k not in ("prompt", "answer")}
                f.write(redact(json.dumps({"generation": self.generation, "operator": "llm",
                                           "status": "llm call", **shown})) + "\n")

    def run(self, resume: bool = False) -> Member:
        """Run to the budget (or go on from the saved state); the best member. Tasks run on ``config.cluster``."""
        with open_executor(self.config.cluster) as self.executor:
            try:
                return self._run(resume)
            finally:
                self.executor = LocalExecutor()

    def _run(self, resume: bool) -> Member:
        if resume and self._state_path.exists():
            self.load()
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "events.jsonl").write_text("")
            self.seed_population()
        idle = 0
        inflight: list[Proposal] = []
        pool = cf.ThreadPoolExecutor(max_workers=self.config.max_concurrent, thread_name_prefix="propose")
        try:
            while self._budget_left() and idle < 20:  # stop when operators keep producing nothing new
                before = self.evaluations
                self.step(pool, inflight)
                idle = idle + 1 if self.evaluations == before else 0
                if self._failed_calls >= _FAILED_CALLS_TO_STOP:
                    raise EvolutionError(f"evolve {self.config.name}: {self._failed_calls} LLM calls in a row "
                                         f"failed, the last: {self._last_rejection}")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # calls in flight end within their timeout
            self._record([])
            self.save()
        if self.evaluations == 0 and self._last_rejection:
            raise EvolutionError(f"evolve {self.config.name}: no child was evaluated; the last proposal was "
                                 f"rejected: {self._last_rejection}")
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


def _fingerprint(candidate: Candidate) -> str | None:
    """The candidate's policy fingerprint (:mod:`harness.novelty`); None for source that does not parse."""
    try:
        with SOURCE_LOCK:
            return policy_fingerprint(candidate.source)
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return None


def _case_rows(frame, fitness: str) -> list[dict]:
    """Per-case rows an operator can read (name, family, preset, fitness and its same-window twin, reason)."""
    keep = [c for c in ("case", "family", "preset", fitness, f"oracle_{fitness}", "reason") if c in frame]
    rows = [{("case_name" if k == "case" else k): (None if v != v else v) for k, v in r.items()}
            for r in frame[keep].to_dict("records")]
    return sorted(rows, key=lambda r: (r.get(fitness) is not None, r.get(fitness) or 0.0))


def _jsonable(obj):
    return [_jsonable(x) for x in obj] if isinstance(obj, tuple | list) else obj


def _tupled(obj):
    return tuple(_tupled(x) for x in obj) if isinstance(obj, list) else obj
