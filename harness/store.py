"""The results store: candidates, runs, evaluations and timings behind one SQLAlchemy URL.

SQLite by default (``sqlite:///results/harness.db``), PostgreSQL when many workers
share it; the code is the same. Only the harness process writes here, never a
candidate. Each finished evaluation is committed on its own, so killing the
harness loses at most the evaluations in flight; ``(candidate, case)`` is unique,
so a second run neither loses nor duplicates one.
"""

from __future__ import annotations

import hashlib
import os
import platform
import random
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from harness.redact import redact
from harness.sandbox.outcome import LIMIT_KINDS

if TYPE_CHECKING:  # the candidate module imports torch; the store needs it only to build one
    from harness.candidate import Candidate

DEFAULT_URL = "sqlite:///results/harness.db"

# The code whose change changes a stored figure: the evaluator, the figure declarations,
# the composed policy of primitive-only candidates and the runner's scoring and timing.
SCORING_CODE = ("evaluator/*.py", "harness/figures.py", "harness/policy.py", "harness/runner.py")


_ROOT = Path(__file__).resolve().parent.parent


def scoring_code_version(root: Path = _ROOT) -> int:
    """A number derived from the :data:`SCORING_CODE` files: stored results are reused only under the same one."""
    digest = hashlib.sha256()
    for path in sorted(p for pattern in SCORING_CODE for p in root.glob(pattern)):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return int(digest.hexdigest()[:7], 16)  # fits the column's 32-bit integer


EVAL_VERSION = scoring_code_version()


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class CandidateRow(Base):
    __tablename__ = "candidates"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    origin: Mapped[str] = mapped_column(String(50), default="file")
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    parent_ids: Mapped[list] = mapped_column(JSON, default=list)
    diff: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class RunRow(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    command: Mapped[str] = mapped_column(Text)
    suite: Mapped[str | None] = mapped_column(String(100), nullable=True)
    versions: Mapped[dict] = mapped_column(JSON, default=dict)
    cpu_model: Mapped[str] = mapped_column(String(200), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class EvaluationRow(Base):
    __tablename__ = "evaluations"
    __table_args__ = (UniqueConstraint("candidate_id", "case_key", "eval_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    candidate_id: Mapped[str] = mapped_column(ForeignKey("candidates.id"))
    case_key: Mapped[str] = mapped_column(String(16))
    case_name: Mapped[str] = mapped_column(String(200))
    family: Mapped[str] = mapped_column(String(50))
    preset: Mapped[str] = mapped_column(String(50))
    case: Mapped[dict] = mapped_column(JSON)
    eval_version: Mapped[int] = mapped_column(Integer, default=EVAL_VERSION)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    failure_kind: Mapped[str | None] = mapped_column(String(20), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The run's limits (timeout_s, memory_mb, output_mb): a limit failure holds for these only.
    limits: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    elapsed_s: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class TimingRow(Base):
    __tablename__ = "timings"
    __table_args__ = (UniqueConstraint("run_id", "candidate_id", "case_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    candidate_id: Mapped[str] = mapped_column(ForeignKey("candidates.id"))
    case_key: Mapped[str] = mapped_column(String(16))
    median_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    stats: Mapped[dict] = mapped_column(JSON, default=dict)
    failure_kind: Mapped[str | None] = mapped_column(String(20), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class EvolutionEventRow(Base):
    """One proposal of an evolve run: the child (or why none was made) and what became of it."""

    __tablename__ = "evolution_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    evolution: Mapped[str] = mapped_column(String(200))
    generation: Mapped[int] = mapped_column(Integer)
    island: Mapped[int] = mapped_column(Integer)
    operator: Mapped[str] = mapped_column(String(50))
    candidate_id: Mapped[str | None] = mapped_column(ForeignKey("candidates.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(20))  # accepted, not better, failed, rejected, archived
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    fitness: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class SecretRow(Base):
    """Values a store keeps for itself alone, e.g. the seed of its private suites."""

    __tablename__ = "store_secrets"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def retry_on_schema_race(create, attempts: int = 5):
    """Run ``create`` (a schema or study creation), retrying when a concurrent worker raced it.

    Workers started together on one PostgreSQL database all try to create the same
    tables and types; all but one fail with a duplicate-key error and simply retry.
    """
    for attempt in range(attempts):
        try:
            return create()
        except (IntegrityError, ProgrammingError, OperationalError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 + random.random() * (attempt + 1))


def _cpu_model() -> str:
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


@runtime_checkable
class ResultStore(Protocol):
    """What the harness asks of a results store. :class:`Store` implements it on any SQLAlchemy URL;
    ``tests/test_store_conformance.py`` is the suite any implementation must pass, on every backend."""

    def add_candidate(self, candidate: Candidate) -> str: ...
    def get_candidate(self, candidate_id: str) -> Candidate: ...
    def suite_secret(self) -> str: ...
    def start_run(self, command: str, suite: str | None) -> int: ...
    def end_run(self, run_id: int) -> None: ...
    def evaluated_case_keys(self, candidate_id: str) -> set[str]: ...
    def add_evaluation(self, run_id: int, candidate_id: str, case: dict, metrics: dict | None,
                       failure_kind: str | None = None, reason: str | None = None, elapsed_s: float = 0.0,
                       limits: dict | None = None) -> bool: ...
    def drop_limit_failures(self, candidate_id: str, limits: dict) -> int: ...
    def delete_evaluations(self, candidate_id: str, case_keys: Iterable[str]) -> None: ...
    def evaluations_frame(self, candidate_ids: list[str] | None = None, case_keys: list[str] | None = None): ...
    def add_timing(self, run_id: int, candidate_id: str, case_key: str, stats: dict | None,
                   failure_kind: str | None = None, reason: str | None = None) -> None: ...
    def timings_frame(self, candidate_ids: list[str] | None = None): ...
    def add_evolution_events(self, evolution: str, generation: int, events: list[dict]) -> None: ...
    def evolution_events_frame(self, evolution: str | None = None): ...


class StoreError(Exception):
    """The store cannot be opened; the message is one line naming the URL (password hidden)."""


def _shown(url: str) -> str:
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
                event.listen(self.engine, "connect", _sqlite_pragmas)
            retry_on_schema_race(lambda: Base.metadata.create_all(self.engine))
            _add_missing_columns(self.engine)
        except (ArgumentError, NoSuchModuleError) as exc:
            raise StoreError(f"--db {_shown(url)}: {exc}") from None
        except ImportError as exc:
            raise StoreError(f"--db {_shown(url)}: its driver {exc.name!r} is not installed "
                             f"(for PostgreSQL, postgresql+psycopg2://... uses the installed one)") from None
        except (OperationalError, DBAPIError) as exc:
            first = str(exc.orig if getattr(exc, "orig", None) else exc).strip().splitlines()[0]
            raise StoreError(f"cannot open the results store {_shown(url)}: {first}") from None
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
            run = RunRow(command=command, suite=suite, versions=_package_versions(), cpu_model=_cpu_model())
            s.add(run)
            s.commit()
            return run.id

    def end_run(self, run_id: int) -> None:
        with self.session() as s:
            run = s.get(RunRow, run_id)
            run.ended_at = _now()
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
                    "timing_failure": t.failure_kind,
                }
                for t in s.scalars(query)
            ]
        return pd.DataFrame.from_records(rows, columns=["run_id", "candidate_id", "case_key", "median_s", "iqr_s",
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


def _add_missing_columns(engine: Engine) -> None:
    """Add columns this version declares to tables an older version created (nullable, so no default is needed)."""
    inspector = inspect(engine)
    with engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in present and column.nullable:
                    kind = column.type.compile(engine.dialect)
                    conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets a leaderboard read while a run writes; busy_timeout rides out short locks.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
