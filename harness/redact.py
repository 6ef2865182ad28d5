"""Secrets out of every text the harness keeps: stored reasons, events, written tables.

A key can reach a text through an exception message, an endpoint that echoes the
request's headers, or a candidate that found one. Whatever the path, :func:`redact`
replaces the values of the process's secret-looking environment variables (names
containing KEY, TOKEN, SECRET, PASSWORD, PASSWD, CREDENTIAL or AUTH) and anything shaped
like a bearer token or an OpenAI-style key with ``[redacted]``.
"""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW(OR)?D|CREDENTIAL|AUTH", re.IGNORECASE)
_SHAPES = (
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),
)
MARK = "[redacted]"


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of secret-looking variables (6 characters or more), longest first."""
    environ = os.environ if environ is None else environ
    values = {v for k, v in environ.items() if _SECRET_NAME.search(k) and len(v) >= 6}
    return sorted(values, key=len, reverse=True)


def redact(text: str | None) -> str | None:
    """``text`` with every secret replaced by ``[redacted]`` (None stays None)."""
    if text is None:
        return None
    for value in secret_values():
        text = text.replace(value, MARK)
    for shape in _SHAPES:
        text = shape.sub(lambda m: (m.group(1) if m.groups() else "") + MARK, text)
    return text
