"""Evaluate candidates on cases: contained, parallel, resumable, fairly timed.

Each task is a harness function that drives one sandboxed worker
(:func:`harness.sandbox.run_task`): the candidate runs there, everything that judges it
(validation, scoring, timing) runs in harness code beside it, and the store is written here
alone. Tasks run on this machine or on a Dask cluster (:mod:`harness.executors`). Three phases:

1. **load**: each candidate is imported once in a worker; one that fails the
   contract is recorded as failed on every case and skipped.
2. **score** (parallel: ``jobs`` workers, or the cluster's): the t -> t+1 and oracle
   figures of each (candidate, case) not yet in the store. Each result is committed as it arrives.
3. **time** (serial, one worker at a time, nothing else running): the rebalance
   call of every scored candidate and of the baseline, case by case, on the same
   secret, unmemoisable inputs, so runtimes and their ratio to the baseline are taken
   under the same conditions, each net of the sandbox's round trip (:mod:`harness.transport`).
   A case's timings are taken on one machine and stored when all are in.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd
from tqdm import tqdm

from evaluator.replay import ReplayPolicy, replay
from evaluator.scoring import score_case, time_case
from evaluator.suites import Case
from evaluator.validation import ConstraintViolation, InvalidPlacement
from harness import sandbox
from harness.candidate import Candidate, baseline
from harness.executors import Executor, LocalExecutor
from harness.store import Store
from harness.transport import net_of_transport, transport_floor


@dataclass(frozen=True)
class RunConfig:
    """How to run an evaluation."""

    limits: sandbox.Limits = field(default_factory=sandbox.Limits)
    jobs: int = 1
    repeats: int = 5
    warmup: int = 1
    force: bool = False
    quiet: bool = False
    time_runs: bool = True
    # Time one case per preset and deployment (:func:`timed_subset`) instead of every case.
    time_per_preset: bool = False
    # Where tasks run: this machine's pool (``jobs`` wide) or a Dask cluster.
    executor: Executor = field(default_factory=LocalExecutor)


@dataclass
class RunReport:
    """What an evaluation run did."""

    run_id: int
    candidate_ids: list[str]
    baseline_id: str
    broken: dict[str, str] = field(default_factory=dict)  # candidate name -> one-line reason
    scored: int = 0
    reused: int = 0
    failed: int = 0


# -- tasks: harness functions that drive one sandboxed worker each ---------------------------
@contextmanager
def _invalid_is_a_failure(what: str = "") -> Iterator[None]:
    """Report an output that is not a placement as the task's ``invalid`` failure (``constraint``: a forbidden one)."""
    try:
        yield
    except ConstraintViolation as exc:
        raise sandbox.TaskFailure(sandbox.CONSTRAINT, f"{what}{exc}") from None
    except InvalidPlacement as exc:
        raise sandbox.TaskFailure(sandbox.INVALID, f"{what}{exc}") from None


def _load(worker: sandbox.Worker, candidate: Candidate) -> None:
    worker.load(candidate.name, candidate.source, candidate.path)


def load_task(worker: sandbox.Worker, candidate: Candidate) -> bool:
    _load(worker, candidate)
    return True


def score_task(worker: sandbox.Worker, payload: tuple[Candidate, Case]) -> dict:
    candidate, case = payload
    _load(worker, candidate)
    with _invalid_is_a_failure():
        return score_case(worker.rebalance, case.history(), case.get_preset())


def time_task(worker: sandbox.Worker, payload: tuple[Candidate, Case, int, int, int]) -> dict:
    """The candidate's timing on the case, its median net of the sandbox's round trip (:mod:`harness.transport`)."""
    candidate, case, repeats, warmup, seed = payload
    _load(worker, candidate)
    last = []

    def timed_rebalance(*args, **kwargs):
        output, seconds = worker.timed_rebalance(*args, **kwargs)
        last[:] = output
        return output, seconds

    history, preset = case.history(), case.get_preset()
    with _invalid_is_a_failure("a timed call: "):
        stats = time_case(timed_rebalance, history, preset, repeats, warmup, seed)
    floor = transport_floor(tuple(last), worker.context, history, preset, repeats, warmup, seed, worker.limits)
    return net_of_transport(stats, floor)


def replay_task(worker: sandbox.Worker, payload: tuple[Candidate, Case, ReplayPolicy]) -> list[dict]:
    candidate, case, policy = payload
    _load(worker, candidate)
    with _invalid_is_a_failure():
        return replay(worker.rebalance, case.history(), case.get_preset(), policy)


# Timed calls may score a little below the same-window figure (their inputs are jittered
# copies of the case's windows); more than this says they were answered differently.
TIMED_BALANCE_TOLERANCE = 0.02


def timed_balance_failure(timed: float, scored: float) -> str | None:
    """Why a timing cannot stand (its outputs were worse than the scored ones), or None."""
    if timed < scored - TIMED_BALANCE_TOLERANCE:
        return (f"timed calls returned placements of GPU balancedness {timed:.4f} on their own windows, against "
                f"{scored:.4f} when scored: a timing of other (stale or cheaper) answers does not count")
    return None


# -- parent side ------------------------------------------------------------------------
class Progress:
    """A tqdm bar when stderr is a terminal; in a piped log, one line when a stage starts and one when it ends."""

    def __init__(self, total: int, desc: str, quiet: bool):
        self.total, self.desc, self.failures = total, desc, 0
        self.silent = quiet or total == 0
        self.started = time.perf_counter()
        self.bar = tqdm(total=total, desc=desc, unit="case", file=sys.stderr, leave=False,
                        disable=self.silent or not sys.stderr.isatty())
        if not self.silent and self.bar.disable:
            print(f"{desc}: {total} tasks", file=sys.stderr, flush=True)

    def update(self, failed: bool = False) -> None:
        self.failures += failed
        self.bar.update(1)
        self.bar.set_postfix(failures=self.failures)

    def close(self) -> None:
        self.bar.close()
        if not self.silent and self.bar.disable:
            print(f"{self.desc}: {self.total} done in {time.perf_counter() - self.started:.0f} s, "
                  f"{self.failures} failed", file=sys.stderr, flush=True)


def evaluate(
    store: Store,
    candidates: list[Candidate],
    cases: list[Case],
    config: RunConfig = RunConfig(),
    command: str = "evaluate",
    suite: str | None = None,
) -> RunReport:
    """Evaluate ``candidates`` (the baseline is always added) on ``cases`` into ``store``."""
    base = baseline()
    everyone = [base] + [c for c in _unique(candidates) if c.id != base.id]
    for c in everyone:
        store.add_candidate(c)
    run_id = store.start_run(command, suite)
    report = RunReport(run_id, [c.id for c in everyone], base.id)

    loadable = _load_phase(store, everyone, cases, config, report)
    _score_phase(store, loadable, cases, config, report)
    if config.time_runs:
        _time_phase(store, loadable, cases, config, report)
    store.end_run(run_id)
    return report


def _unique(candidates: list[Candidate]) -> list[Candidate]:
    seen: dict[str, Candidate] = {}
    for c in candidates:
        seen.setdefault(c.id, c)
    return list(seen.values())


def _reusable_case_keys(store: Store, candidate: Candidate, config: RunConfig) -> set[str]:
    """Cases whose stored result this run reuses: all but limit failures under other limits (dropped)."""
    store.drop_limit_failures(candidate.id, config.limits.to_dict())
    return store.evaluated_case_keys(candidate.id)


def _load_phase(store: Store, everyone: list[Candidate], cases: list[Case], config: RunConfig, report: RunReport):
    loadable = []
    for index, outcome in config.executor.map(load_task, everyone, config.limits, config.jobs):
        candidate = everyone[index]
        if outcome.ok:
            loadable.append(candidate)
            continue
        report.broken[candidate.name] = outcome.reason or outcome.failure_kind
        done = _reusable_case_keys(store, candidate, config)
        for case in cases:
            if case.key in done:
                report.reused += 1
                continue
            store.add_evaluation(
                report.run_id, candidate.id, case.to_dict(), None, outcome.failure_kind, outcome.reason,
                limits=config.limits.to_dict(),
            )
            report.scored += 1
            report.failed += 1
    # Keep the callers' order (tasks are yielded in completion order).
    order = {c.id: i for i, c in enumerate(everyone)}
    return sorted(loadable, key=lambda c: order[c.id])


def _score_phase(store: Store, loadable: list[Candidate], cases: list[Case], config: RunConfig, report: RunReport):
    todo = []
    for candidate in loadable:
        done = _reusable_case_keys(store, candidate, config)
        if config.force and done:
            store.delete_evaluations(candidate.id, [c.key for c in cases])
            done = set()
        for case in cases:
            if case.key in done:
                report.reused += 1
            else:
                todo.append((candidate, case))
    bar = Progress(len(todo), "score", config.quiet)
    for index, outcome in config.executor.map(score_task, todo, config.limits, config.jobs):
        candidate, case = todo[index]
        store.add_evaluation(
            report.run_id, candidate.id, case.to_dict(), outcome.value, outcome.failure_kind, outcome.reason,
            outcome.elapsed_s, config.limits.to_dict(),
        )
        report.scored += 1
        report.failed += not outcome.ok
        bar.update(not outcome.ok)
    bar.close()


def timed_subset(cases: list[Case]) -> list[Case]:
    """One case per preset and deployment, in suite order: its first ``zipf`` case, else its first case.

    A call's time depends on the shape far more than on the loads, so this times every shape
    at a fraction of the cost; the leaderboard's ``timed`` column says how many cases were timed.
    """
    chosen: dict[str, Case] = {}
    for case in cases:
        if case.where not in chosen or case.family == "zipf" and chosen[case.where].family != "zipf":
            chosen[case.where] = case
    keep = {c.key for c in chosen.values()}
    return [c for c in cases if c.key in keep]


def _time_phase(store: Store, loadable: list[Candidate], cases: list[Case], config: RunConfig, report: RunReport):
    if config.time_per_preset:
        cases = timed_subset(cases)
    ids = [c.id for c in loadable]
    scored = store.evaluations_frame(ids, [c.key for c in cases])
    oracle = {} if scored.empty else {
        (r.candidate_id, r.case_key): r.oracle_gpu_balancedness for r in scored.itertuples() if pd.isna(r.failure_kind)
    }
    # One secret seed per run: every candidate gets the same timing inputs, no candidate can know them.
    run_seed = secrets.randbits(32)
    groups = [
        [(candidate, case, config.repeats, config.warmup, run_seed ^ i)
         for candidate in loadable if (candidate.id, case.key) in oracle]
        for i, case in enumerate(cases)
    ]
    groups = [g for g in groups if g]
    bar = Progress(sum(map(len, groups)), "time", config.quiet)
    # One case at a time, its tasks in turn on one machine, nothing else competing for the CPU.
    for index, outcomes in config.executor.map_groups(time_task, groups, config.limits):
        for (candidate, case, *_), outcome in zip(groups[index], outcomes, strict=True):
            kind, reason = outcome.failure_kind, outcome.reason
            if outcome.ok:
                reason = timed_balance_failure(outcome.value["gpu_balancedness"], oracle[(candidate.id, case.key)])
                kind = sandbox.INVALID if reason else None
            store.add_timing(report.run_id, candidate.id, case.key, None if kind else outcome.value, kind, reason)
            bar.update(kind is not None)
    bar.close()
