"""The trust boundary between candidate code and everything that scores it.

Candidate code runs only in confined worker processes forked by a clean zygote
(:mod:`.zygote_handle`, :mod:`.zygote`, :mod:`.jail`, :mod:`.worker`); the harness drives them through
:class:`Worker` handles, :func:`run_task` and :func:`run_tasks` (:mod:`.pool`), and only JSON headers and
plain numeric arrays cross (:mod:`.wire`). Validation, scoring, timing bookkeeping and
the store stay in the harness process, which never executes or unpickles anything a
candidate produced.
"""

from harness.sandbox.outcome import (
    CONSTRAINT,
    CONTRACT,
    CRASH,
    ERROR,
    EXIT,
    FAILURE_KINDS,
    INVALID,
    LIMIT_KINDS,
    MEMORY,
    OUTPUT,
    TIMEOUT,
    Limits,
    Outcome,
    TaskFailure,
    one_line,
)
from harness.sandbox.zygote_handle import SandboxError, remove_stale_folders, zygote

# The pool imports torch (arrays cross as tensors); it is loaded on first use so that the
# light parts (limits, outcomes, the zygote) cost nothing to import.
_POOL_NAMES = ("Worker", "run_task", "run_tasks")


def __getattr__(name: str):
    if name in _POOL_NAMES:
        from harness.sandbox import pool

        return getattr(pool, name)
    raise AttributeError(f"module 'harness.sandbox' has no attribute {name!r}")


__all__ = [
    "CONSTRAINT", "CONTRACT", "CRASH", "ERROR", "EXIT", "FAILURE_KINDS", "INVALID", "LIMIT_KINDS", "MEMORY",
    "OUTPUT", "TIMEOUT",
    "Limits", "Outcome", "SandboxError", "TaskFailure", "Worker", "one_line", "remove_stale_folders", "run_task",
    "run_tasks",
    "zygote",
]
