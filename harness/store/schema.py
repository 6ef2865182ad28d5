"""The store's tables (SQLAlchemy ORM) and the schema chores every backend shares."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from harness.store.version import EVAL_VERSION


def utc_now() -> datetime:
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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class RunRow(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    command: Mapped[str] = mapped_column(Text)
    suite: Mapped[str | None] = mapped_column(String(100), nullable=True)
    versions: Mapped[dict] = mapped_column(JSON, default=dict)
    cpu_model: Mapped[str] = mapped_column(String(200), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class LLMCallRow(Base):
    """One call of an evolve run's LLM operator: who was asked, what it cost, what came of it."""

    __tablename__ = "llm_calls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    evolution: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    base_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    temperature: Mapped[float | None] = mapped_column(Float, nullable=True)
    parent_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    child_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 1: first ask; 2..: feedback
    outcome: Mapped[str] = mapped_column(String(20))  # applied, partial, unusable, failed
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    retries: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cost_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


# What one LLM call record holds (the table's columns but the run's name, id and time).
LLM_CALL_COLUMNS = tuple(c.name for c in LLMCallRow.__table__.columns
                         if c.name not in ("id", "evolution", "created_at"))


class ReplayRow(Base):
    """One candidate's replay of one case: every window's record (``evaluator.replay``), as JSON."""

    __tablename__ = "replays"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    candidate_id: Mapped[str] = mapped_column(ForeignKey("candidates.id"))
    case_name: Mapped[str] = mapped_column(Text)
    policy_json: Mapped[str] = mapped_column(Text)  # every, estimator, span, alpha, expert_bytes
    records_json: Mapped[str] = mapped_column(Text)  # [{window, rebalanced, gpu_balancedness, ...}, ...]


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


def add_missing_columns(engine: Engine) -> None:
    """Add columns this version declares to tables an older version created (nullable, so no default is needed)."""
    inspector = inspect(engine)
    with engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in present and column.nullable:
                    kind = column.type.compile(engine.dialect)
                    conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))


def sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets a leaderboard read while a run writes; busy_timeout rides out short locks.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
