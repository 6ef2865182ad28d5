"""What a contained task can end in: limits, outcomes and failure kinds (stdlib only)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Failure kinds, as stored and shown.
CONTRACT = "contract"  # import failed, missing function, wrong signature
ERROR = "error"  # raised an exception
INVALID = "invalid"  # returned something that is not a placement, or broke the protocol
CONSTRAINT = "constraint"  # a placement, but one the deployment forbids (a group split over nodes)
EXIT = "exit"  # sys.exit / os._exit
CRASH = "crash"  # killed by a signal (segfault, abort, ...)
TIMEOUT = "timeout"  # passed the wall-time limit
MEMORY = "memory"  # passed the memory limit
OUTPUT = "output"  # printed past the output limit
FAILURE_KINDS = (CONTRACT, ERROR, INVALID, CONSTRAINT, EXIT, CRASH, TIMEOUT, MEMORY, OUTPUT)
# Failures that say as much about the run's limits as about the candidate: a run with
# other limits must not reuse them.
LIMIT_KINDS = (TIMEOUT, MEMORY, OUTPUT)


@dataclass(frozen=True)
class Limits:
    """Per task: wall time (s), memory the worker may add (MiB), output it may print (MiB)."""

    timeout_s: float = 120.0
    memory_mb: int = 4096
    output_mb: int = 8

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Outcome:
    """What one task produced: ``value`` when ``ok``, else a failure kind and a reason."""

    value: Any = None
    failure_kind: str | None = None
    reason: str | None = None
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure_kind is None


class TaskFailure(Exception):
    """Raised to report a failure of a given kind (by the worker's handle, or by task code)."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


def one_line(text: object, limit: int = 300) -> str:
    """``text`` folded to one line of at most ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
