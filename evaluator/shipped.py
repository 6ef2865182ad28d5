"""Where the files shipped with the harness are: the built-in candidates, configs, seed diffs, real traces.

In a checkout (or an editable install) they are the repository's own folders. A wheel
installs them as data files under ``<prefix>/share/eplb-harness/`` (``pyproject.toml``),
so ``eplb-harness evaluate --builtin`` works from any directory.
"""

from __future__ import annotations

import site
import sys
from functools import cache
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[1]


@cache
def shipped_root() -> Path:
    """The folder holding ``candidates/``, ``configs/``, ``diffs/`` and ``traces/``."""
    if (_CHECKOUT / "candidates" / "deepseek_baseline.py").is_file():
        return _CHECKOUT
    for prefix in (sys.prefix, sys.base_prefix, site.getuserbase()):
        root = Path(prefix) / "share" / "eplb-harness"
        if (root / "candidates").is_dir():
            return root
    raise FileNotFoundError("the harness's shipped files (candidates/, configs/, traces/) are neither next to its "
                            f"code in {_CHECKOUT} nor in <prefix>/share/eplb-harness: reinstall the package")


def shipped(*parts: str) -> Path:
    """A shipped file or folder, e.g. ``shipped("candidates", "deepseek_baseline.py")``."""
    return shipped_root().joinpath(*parts)


def here_or_shipped(path: str | Path) -> Path:
    """``path`` if it exists here; else, for a relative path, the shipped file of that name if there is one.

    So ``candidates/``, ``configs/evolve-demo.yaml`` and ``diffs/seeds`` mean the shipped ones
    from any directory that has no such file of its own.
    """
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    try:
        found = shipped(str(path))
    except FileNotFoundError:
        return path
    return found if found.exists() else path
