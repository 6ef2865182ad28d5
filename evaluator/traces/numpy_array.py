"""Dense arrays ``[S, L, E]`` or ``[L, E]`` in ``.npy`` or ``.npz`` (first array, or key ``load``/``logical_count``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluator.traces.base import TRACE_FORMATS, TraceError, TraceFormat


@TRACE_FORMATS.register("numpy")
@dataclass(frozen=True)
class NumpyTrace(TraceFormat):
    suffixes = ('.npy', '.npz')
    directory = False

    def read(self, path: Path, num_experts: int | None) -> tuple[np.ndarray, int]:
        return _numpy_records(path)


def _checked_npy_header(path: Path, f, available: int, where: str) -> None:
    """Refuse an ``.npy`` stream whose header is unreadable or claims more bytes than there are."""
    try:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
    except (ValueError, EOFError, OSError) as exc:
        raise TraceError(f"{path}: {where}not a readable .npy array ({exc.__class__.__name__}: {exc})") from None
    if dtype.kind not in "biuf":
        raise TraceError(f"{path}: {where}dtype {dtype} is not a number type (loads must be integers or floats)")
    claimed = dtype.itemsize * math.prod(shape)
    if claimed > available:
        raise TraceError(f"{path}: {where}header claims {claimed} bytes of data, the file holds {available}")


def _load_numpy(path: Path, suffix: str) -> np.ndarray:
    """The load array of an ``.npy`` file, or of an ``.npz`` file (key load/logical_count, else the first)."""
    import zipfile

    try:
        if suffix == ".npy":
            with open(path, "rb") as f:
                _checked_npy_header(path, f, path.stat().st_size, "")
            return np.asarray(np.load(path, allow_pickle=False), dtype=np.float64)
        with zipfile.ZipFile(path) as archive:
            names = [n.removesuffix(".npy") for n in archive.namelist()]
            if not names:
                raise TraceError(f"{path}: empty .npz")
            key = next((k for k in ("load", "logical_count") if k in names), names[0])
            info = archive.getinfo(key + ".npy")
            with archive.open(info) as f:
                _checked_npy_header(path, f, info.file_size, f"array {key!r}: ")
            with archive.open(info) as f:
                return np.asarray(np.load(f, allow_pickle=False), dtype=np.float64)
    except TraceError:
        raise
    except (ValueError, EOFError, OSError, KeyError, zipfile.BadZipFile) as exc:
        raise TraceError(f"{path}: not a readable numpy file ({exc.__class__.__name__}: {exc})") from None


def _numpy_records(path: Path) -> tuple[np.ndarray, int]:
    arr = _load_numpy(path, path.suffix.lower())
    return (arr[None] if arr.ndim == 2 else arr), 1
