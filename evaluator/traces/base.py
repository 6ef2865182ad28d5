"""What every trace format shares: the registry, the array checks, and reading a file into windows.

A format is a dataclass registered in :data:`TRACE_FORMATS` under its name, with the file
suffixes it reads (or ``directory = True``) and :meth:`TraceFormat.read`, which gives
per-record loads ``[S, L, E]`` and the format's default window. :func:`load_trace` picks
the format by suffix, sums records into windows and checks them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import numpy as np

from evaluator.registry import Registry


class TraceError(ValueError):
    """A trace that cannot be used; the message names the file and the place."""


class TraceFormat:
    """One file layout of expert loads; subclasses are dataclasses registered in :data:`TRACE_FORMATS`."""

    suffixes: ClassVar[tuple[str, ...]] = ()  # lower-case, with the dot
    directory: ClassVar[bool] = False  # reads a folder instead of a file

    def read(self, path: Path, num_experts: int | None) -> tuple[np.ndarray, int]:
        """Per-record loads ``[S, L, E]`` (float64) and the default window, in records.

        ``num_experts`` (the preset's, when known) maps physical slots back to experts
        in formats that record per slot.
        """
        raise NotImplementedError


TRACE_FORMATS: Registry[TraceFormat] = Registry("trace format")


def dense(path: Path, data, where: str) -> np.ndarray:
    """``data`` as a float64 array, refusing ragged rows with the place they start."""
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.dtype == object:
        raise TraceError(f"{path}: {where}: ragged rows ({first_ragged(data)})")
    return arr


def first_ragged(data, prefix: str = "") -> str:
    if isinstance(data, list | tuple) and data and isinstance(data[0], list | tuple):
        width = len(data[0])
        for i, row in enumerate(data):
            if not isinstance(row, list | tuple) or len(row) != width:
                return f"row {prefix}[{i}] has {len(row) if isinstance(row, list | tuple) else 'no'} entries, " \
                       f"row {prefix}[0] has {width}"
            inner = first_ragged(row, f"{prefix}[{i}]")
            if inner:
                return inner
    return ""


def physical_to_logical(path: Path, counts: np.ndarray, p2l: np.ndarray, num_experts: int | None,
                         where: str) -> np.ndarray:
    """``counts [S, L, R]`` per physical slot -> ``[S, L, E]`` per logical expert through ``p2l [L, R]``."""
    if p2l.shape != counts.shape[1:]:
        raise TraceError(f"{path}: {where}: map shape {list(p2l.shape)} does not match loads {list(counts.shape)}")
    # A map entry must name an expert: -1 would wrap to the last one, 0.5 truncate to 0.
    E = num_experts or (int(p2l.max()) + 1 if p2l.size and np.isfinite(p2l).all() else 0)
    bad = ~np.isfinite(p2l) | (p2l != np.round(p2l)) | (p2l < 0) | (p2l >= max(E, 1))
    if bad.any():
        layer, slot = (int(i) for i in np.argwhere(bad)[0])
        value = float(p2l[layer, slot])
        raise TraceError(f"{path}: {where}: map entry [{layer}][{slot}] = {value:g} is not an expert id "
                         f"in [0, {E})")
    out = np.zeros((counts.shape[0], counts.shape[1], E))
    for layer in range(counts.shape[1]):
        np.add.at(out[:, layer], (slice(None), p2l[layer].astype(np.int64)), counts[:, layer])
    return out


def format_for(path: Path) -> TraceFormat:
    """The registered format that reads ``path``: a folder format for a directory, else by suffix."""
    for name in TRACE_FORMATS:
        cls = TRACE_FORMATS.get(name)
        if (cls.directory and path.is_dir()) or (not path.is_dir() and path.suffix.lower() in cls.suffixes):
            return TRACE_FORMATS.create(name)
    if not path.exists():
        raise TraceError(f"{path}: no such file or directory")
    known = ", ".join(s.lstrip(".") for n in TRACE_FORMATS for s in TRACE_FORMATS.get(n).suffixes)
    raise TraceError(f"{path}: unknown trace format {path.suffix.lower()!r} ({known}, or a TRT-LLM dir)")


def read_records(path: str | Path, num_experts: int | None = None) -> tuple[np.ndarray, int]:
    """Per-record loads ``[S, L, E]`` and the format's default window, by file type."""
    path = Path(path)
    fmt = format_for(path)
    if not fmt.directory and not path.is_file():
        raise TraceError(f"{path}: no such file or directory")
    return fmt.read(path, num_experts)


def check_loads(path: Path | str, records: np.ndarray) -> None:
    """Refuse NaN, infinite or negative loads and wrong dimensionality, naming the first place."""
    if records.ndim != 3:
        raise TraceError(f"{path}: expected [steps, layers, experts] or [layers, experts], got {records.ndim} dims")
    for test, what in ((np.isnan, "NaN"), (np.isinf, "infinite"), (lambda a: a < 0, "negative")):
        bad = test(records)
        if bad.any():
            s, l, e = (int(i) for i in np.argwhere(bad)[0])
            raise TraceError(f"{path}: {what} load at step {s}, layer {l}, expert {e}")


def load_trace(path: str | Path, window: int | None = None, num_layers: int | None = None,
               num_experts: int | None = None) -> np.ndarray:
    """Windows ``[T, L, E]`` of a trace: ``window`` consecutive records summed (format default if None).

    ``num_layers``/``num_experts`` (a preset's) are checked when given. A trailing
    partial window is dropped.
    """
    records, default_window = read_records(path, num_experts)
    check_loads(path, records)
    busy = records.sum(axis=(0, 2)) > 0
    if not busy.all() and busy.any():
        records = records[:, busy]  # dense layers of SGLang/TRT-LLM dumps carry no expert load
    window = window or default_window
    if window < 1:
        raise TraceError(f"{path}: window must be at least 1")
    count = max(1, len(records) // window) if len(records) >= window else 0
    if count == 0:
        raise TraceError(f"{path}: {len(records)} records, fewer than one window of {window}")
    windows = records[: count * window].reshape(count, window, *records.shape[1:]).sum(axis=1)
    _, L, E = windows.shape
    if num_layers is not None and L != num_layers or num_experts is not None and E != num_experts:
        raise TraceError(f"{path}: {L} layers x {E} experts does not fit the preset's "
                         f"{num_layers} x {num_experts}")
    if not math.isfinite(float(windows.sum())):
        raise TraceError(f"{path}: loads overflow when summed into windows")
    return windows
