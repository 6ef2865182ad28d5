"""The results store: candidates, runs, evaluations and timings behind one SQLAlchemy URL.

SQLite by default (``sqlite:///results/harness.db``), PostgreSQL when many workers
share it; the code is the same. Only the harness process writes here, never a
candidate. Each finished evaluation is committed on its own, so killing the
harness loses at most the evaluations in flight; ``(candidate, case)`` is unique,
so a second run neither loses nor duplicates one.
"""

from harness.store.interface import ResultStore, StoreError
from harness.store.schema import retry_on_schema_race
from harness.store.sql import DEFAULT_URL, Store, shown_url
from harness.store.version import EVAL_VERSION, SCORING_CODE, scoring_code_version

__all__ = ["DEFAULT_URL", "EVAL_VERSION", "SCORING_CODE", "ResultStore", "Store", "StoreError",
           "retry_on_schema_race", "scoring_code_version", "shown_url"]
