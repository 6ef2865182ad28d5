"""The version stored results are reused under: derived from the code that computes a stored figure."""

from __future__ import annotations

import hashlib
from pathlib import Path

# The code whose change changes a stored figure: the evaluator (its workload families and
# trace formats included), the figure declarations, the composed policy of primitive-only
# candidates and the runner's scoring and timing.
SCORING_CODE = ("evaluator/**/*.py", "harness/figures.py", "harness/policy.py", "harness/runner.py",
                "harness/transport.py", "harness/transport_probe.py")


_ROOT = Path(__file__).resolve().parents[2]


def scoring_code_version(root: Path = _ROOT) -> int:
    """A number derived from the :data:`SCORING_CODE` files: stored results are reused only under the same one."""
    digest = hashlib.sha256()
    for path in sorted(p for pattern in SCORING_CODE for p in root.glob(pattern)):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return int(digest.hexdigest()[:7], 16)  # fits the column's 32-bit integer


EVAL_VERSION = scoring_code_version()
