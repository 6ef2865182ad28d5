"""The SQLAlchemy store: any URL (SQLite by default, PostgreSQL for many workers), the same code."""

from __future__ import annotations

import json
import os
import platform
import secrets
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, delete, event, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session

from harness.redact import redact
from harness.sandbox.outcome import LIMIT_KINDS
from harness.store.interface import StoreError
from harness.store.schema import (
    LLM_CALL_COLUMNS,
    Base,
    CandidateRow,
    EvaluationRow,
    EvolutionEventRow,
    LLMCallRow,
    ReplayRow,
    RunRow,
    SecretRow,
    TimingRow,
    add_missing_columns,
    retry_on_schema_race,
    sqlite_pragmas,
    utc_now,
)
from harness.store.version import EVAL_VERSION

if TYPE_CHECKING:  # the candidate module imports torch; the store needs it only to build one
    from harness.candidate import Candidate

DEFAULT_URL = "sqlite:///results/harness.db"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for pkg in ("torch", "numpy", "optuna", "pandas", "sqlalchemy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return versions


# Candidate attributes stored as they are (the id is derived, parent_ids is a list in the row).
_CANDIDATE_FIELDS = ("name", "source", "path", "description", "origin", "diff")


def shown_url(url: str) -> str:
    """``url`` with its password hidden, for messages and reports."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


class Store:
    """A results database. ``Store(url)`` creates the tables when missing.

    ``create=False`` (for commands that only read) refuses a SQLite file that does not
    exist instead of creating an empty one.
    """

    def __init__(self, url: str = DEFAULT_URL, create: bool = True):
        self.url = url
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreError(f"--db {url!r} is not a database URL (e.g. {DEFAULT_URL} or "
                             f"postgresql://user@host/db)") from None
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            path = Path(parsed.database)
            if not create and not path.exists():
                raise StoreError(f"no results store at {url} (the file {path} does not exist)")
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine: Engine = create_engine(url)
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", sqlite_pragmas)
            retry_on_schema_race(lambda: Base.metadata.create_all(self.engine))
            add_missing_columns(self.engine)
        except (ArgumentError, NoSuchModuleError) as exc:
            raise StoreError(f"--db {shown_url(url)}: {exc}") from None
        except ImportError as exc:
            raise StoreError(f"--db {shown_url(url)}: its driver {exc.name!r} is not installed "
                             f"(for PostgreSQL, postgresql+psycopg2://... uses the installed one)") from None
        except (OperationalError, DBAPIError) as exc:
            first = str(exc.orig if getattr(exc, "orig", None) else exc).strip().splitlines()[0]
            raise StoreError(f"cannot open the results store {shown_url(url)}: {first}") from None
        # Forked workers must not close the parent's connections (PostgreSQL sockets).
        os.register_at_fork(after_in_child=lambda: self.engine.dispose(close=False))

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # -- candidates ----------------------------------------------------------------
    def add_candidate(self, candidate: Candidate) -> str:
        """Record ``candidate`` once by content hash; returns its id."""
        with self.session() as s:
            if s.get(CandidateRow, candidate.id) is None:
                fields = {f: getattr(candidate, f) for f in _CANDIDATE_FIELDS}
                s.add(CandidateRow(id=candidate.id, parent_ids=list(candidate.parent_ids), **fields))
                try:
                    s.commit()
                except IntegrityError:  # another worker recorded it first
                    s.rollback()
        return candidate.id

    def get_candidate(self, candidate_id: str) -> Candidate:
        with self.session() as s:
            row = s.get(CandidateRow, candidate_id)
            if row is None:
                raise KeyError(candidate_id)
            from harness.candidate import Candidate

            return Candidate(parent_ids=tuple(row.parent_ids), **{f: getattr(row, f) for f in _CANDIDATE_FIELDS})

    def suite_secret(self) -> str:
        """This store's secret for private suites (:func:`evaluator.suites.private_cases`), made on first use."""
        with self.session() as s:
            row = s.get(SecretRow, "suite_seed")
            if row is None:
                s.add(SecretRow(name="suite_seed", value=secrets.token_hex(16)))
                try:
                    s.commit()
                except IntegrityError:  # another process made it first
                    s.rollback()
                row = s.get(SecretRow, "suite_seed")
            return row.value

    # -- runs ----------------------------------------------------------------------
    def start_run(self, command: str, suite: str | None) -> int:
        with self.session() as s:
            run = RunRow(command=command, suite=suite, versions=_package_versions(), cpu_model=cpu_model())
            s.add(run)
            s.commit()
            return run.id

    def end_run(self, run_id: int) -> None:
        with self.session() as s:
            run = s.get(RunRow, run_id)
            run.ended_at = utc_now()
            s.commit()

    # -- evaluations -----------------------------------------------------------------
    def evaluated_case_keys(self, candidate_id: str) -> set[str]:
        with self.session() as s:
            rows = s.scalars(
                select(EvaluationRow.case_key).where(
                    EvaluationRow.candidate_id == candidate_id, EvaluationRow.eval_version == EVAL_VERSION
                )
            )
            return set(rows)

    def evaluations_frame(self, candidate_ids: list[str] | None = None, case_keys: list[str] | None = None):
        """One row per stored evaluation: identity columns plus every metric (a pandas DataFrame)."""
        import pandas as pd

        query = (
            select(EvaluationRow, CandidateRow.name, CandidateRow.origin, CandidateRow.parent_ids)
            .join(CandidateRow, CandidateRow.id == EvaluationRow.candidate_id)
            .where(EvaluationRow.eval_version == EVAL_VERSION)
        )
        if candidate_ids is not None:
            query = query.where(EvaluationRow.candidate_id.in_(candidate_ids))
        if case_keys is not None:
            query = query.where(EvaluationRow.case_key.in_(case_keys))
        records = []
        with self.session() as s:
            for ev, name, origin, parents in s.execute(query):
                records.append(
                    {
                        "candidate_id": ev.candidate_id,
                        "candidate": name,
                        "origin": origin,
                        "parent_ids": parents,
                        "case_key": ev.case_key,
                        "case": ev.case_name,
                        "family": ev.family,
                        "preset": ev.preset,
                        "run_id": ev.run_id,
                        "failure_kind": ev.failure_kind,
                        "reason": ev.reason,
                        **{k: v for k, v in ev.metrics.items() if not isinstance(v, list)},
                    }
                )
        return pd.DataFrame.from_records(records)

    def timings_frame(self, candidate_ids: list[str] | None = None):
        """One row per stored timing (pandas DataFrame)."""
        import pandas as pd

        query = select(TimingRow)
        if candidate_ids is not None:
            query = query.where(TimingRow.candidate_id.in_(candidate_ids))
        with self.session() as s:
            rows = [
                {
                    "run_id": t.run_id,
                    "candidate_id": t.candidate_id,
                    "case_key": t.case_key,
                    "median_s": t.median_s,
                    "iqr_s": t.stats.get("iqr_s"),
                    "measured_median_s": t.stats.get("measured_median_s"),
                    "transport_s": t.stats.get("transport_s"),
                    "timed_gpu_balancedness": t.stats.get("gpu_balancedness"),
                    "timing_failure": t.failure_kind,
                }
                for t in s.scalars(query)
            ]
        return pd.DataFrame.from_records(rows, columns=["run_id", "candidate_id", "case_key", "median_s", "iqr_s",
                                                        "measured_median_s", "transport_s", "timed_gpu_balancedness",
                                                        "timing_failure"])

    def drop_limit_failures(self, candidate_id: str, limits: dict) -> int:
        """Delete the candidate's limit failures (timeout, memory, output) recorded under other
        ``limits``: they say nothing about a run with these. Returns how many went."""
        with self.session() as s:
            rows = [r for r in s.scalars(select(EvaluationRow).where(
                EvaluationRow.candidate_id == candidate_id, EvaluationRow.eval_version == EVAL_VERSION,
                EvaluationRow.failure_kind.in_(LIMIT_KINDS))) if r.limits != limits]
            for row in rows:
                s.delete(row)
            s.commit()
        return len(rows)

    def delete_evaluations(self, candidate_id: str, case_keys: Iterable[str]) -> None:
        keys = list(case_keys)
        with self.session() as s:
            for row in s.scalars(
                select(EvaluationRow).where(
                    EvaluationRow.candidate_id == candidate_id,
                    EvaluationRow.case_key.in_(keys),
                    EvaluationRow.eval_version == EVAL_VERSION,
                )
            ):
                s.delete(row)
            s.commit()

    def add_evaluation(
        self,
        run_id: int,
        candidate_id: str,
        case: dict,
        metrics: dict | None,
        failure_kind: str | None = None,
        reason: str | None = None,
        elapsed_s: float = 0.0,
        limits: dict | None = None,
    ) -> bool:
        """Commit one evaluation; False if that (candidate, case) was already stored."""
        with self.session() as s:
            s.add(
                EvaluationRow(
                    candidate_id=candidate_id,
                    case_key=case["case_key"],
                    case_name=case["case"],
                    family=case["family"],
                    preset=case["preset"] or "",
                    case=case,
                    run_id=run_id,
                    failure_kind=failure_kind,
                    reason=redact(reason),
                    limits=limits,
                    metrics=metrics or {},
                    elapsed_s=elapsed_s,
                )
            )
            try:
                s.commit()
            except IntegrityError:
                s.rollback()
                return False
        return True

    def add_evolution_events(self, evolution: str, generation: int, events: list[dict]) -> None:
        """Commit one generation's events (dicts with island, operator, status, and optional
        candidate_id, reason, fitness)."""
        with self.session() as s:
            for e in events:
                s.add(EvolutionEventRow(evolution=evolution, generation=generation, island=e["island"],
                                        operator=e["operator"], candidate_id=e.get("candidate_id"),
                                        status=e["status"], reason=redact(e.get("reason")),
                                        fitness=e.get("fitness")))
            s.commit()

    def evolution_events_frame(self, evolution: str | None = None):
        """One row per stored evolution event (pandas DataFrame), oldest first."""
        import pandas as pd

        query = select(EvolutionEventRow).order_by(EvolutionEventRow.id)
        if evolution is not None:
            query = query.where(EvolutionEventRow.evolution == evolution)
        columns = ["evolution", "generation", "island", "operator", "candidate_id", "status", "reason", "fitness"]
        with self.session() as s:
            rows = [{c: getattr(r, c) for c in columns} for r in s.scalars(query)]
        return pd.DataFrame.from_records(rows, columns=columns)

    def delete_evolution_events(self, evolution: str, after_generation: int) -> None:
        """Forget the events of generations after ``after_generation`` (a resumed run redoes them)."""
        with self.session() as s:
            s.execute(delete(EvolutionEventRow).where(EvolutionEventRow.evolution == evolution,
                                                      EvolutionEventRow.generation > after_generation))
            s.commit()

    def add_llm_calls(self, evolution: str, calls: list[dict]) -> None:
        """Commit LLM calls (dicts with the keys of :data:`harness.store.schema.LLM_CALL_COLUMNS`); texts redacted."""
        with self.session() as s:
            for call in calls:
                values = {k: call.get(k) for k in LLM_CALL_COLUMNS}
                for key in ("reason", "prompt", "answer", "base_url"):
                    values[key] = redact(values[key])
                s.add(LLMCallRow(evolution=evolution, **values))
            s.commit()

    def llm_calls_frame(self, evolution: str | None = None):
        """One row per stored LLM call (pandas DataFrame), oldest first."""
        import pandas as pd

        query = select(LLMCallRow).order_by(LLMCallRow.id)
        if evolution is not None:
            query = query.where(LLMCallRow.evolution == evolution)
        columns = ["evolution", *LLM_CALL_COLUMNS, "created_at"]
        with self.session() as s:
            rows = [{c: getattr(r, c) for c in columns} for r in s.scalars(query)]
        return pd.DataFrame.from_records(rows, columns=columns)

    def add_replay(self, run_id: int, candidate_id: str, case_name: str, policy: dict, records: list[dict]) -> None:
        """Commit one candidate's replay: the per-window records ``evaluator.replay`` returns."""
        with self.session() as s:
            s.add(ReplayRow(run_id=run_id, candidate_id=candidate_id, case_name=case_name,
                            policy_json=json.dumps(policy, sort_keys=True), records_json=json.dumps(records)))
            s.commit()

    def replays_frame(self):
        """One row per (replay run, candidate): run_id, created_at, case, policy (dict), candidate, records (list)."""
        import pandas as pd

        query = (select(ReplayRow, CandidateRow.name, RunRow.started_at)
                 .join(CandidateRow, CandidateRow.id == ReplayRow.candidate_id)
                 .join(RunRow, RunRow.id == ReplayRow.run_id).order_by(ReplayRow.id))
        columns = ["run_id", "created_at", "case", "policy", "candidate_id", "candidate", "records"]
        with self.session() as s:
            rows = [(r.run_id, started, r.case_name, json.loads(r.policy_json), r.candidate_id, name,
                     json.loads(r.records_json)) for r, name, started in s.execute(query)]
        return pd.DataFrame.from_records(rows, columns=columns)

    def add_timing(
        self,
        run_id: int,
        candidate_id: str,
        case_key: str,
        stats: dict | None,
        failure_kind: str | None = None,
        reason: str | None = None,
    ) -> None:
        with self.session() as s:
            s.add(
                TimingRow(
                    run_id=run_id,
                    candidate_id=candidate_id,
                    case_key=case_key,
                    median_s=(stats or {}).get("median_s"),
                    stats=stats or {},
                    failure_kind=failure_kind,
                    reason=redact(reason),
                )
            )
            s.commit()
