"""Expert-load traces written by real systems and studies, read into ``[T, L, E]`` windows.

Every loader first produces per-record loads ``[S, L, E]`` (a record is a step or a
dump); :func:`load_trace` then sums consecutive groups of ``window`` records into
windows and checks the result. Supported (see README for layouts and versions):

* JSON load history ``{"load_history": [{"logical_expert_load": [[...] per layer]}, ...]}``
  (one entry per step; default window 100 steps);
* dense arrays ``[S, L, E]`` or ``[L, E]`` in ``.npy``, ``.npz`` (first array, or key
  ``load``/``logical_count``), ``.pt`` (a tensor), and long-form CSV
  ``step,layer,expert,load``;
* SGLang expert-distribution dumps (``.pt``): ``stat`` mode ``{"logical_count": [S, L, E]}``,
  ``per_pass`` mode ``{"records": [{"global_physical_count": [L, R]}, ...],
  "last_physical_to_logical_map": [L, R]}``; and ``--init-expert-location`` JSON with
  ``logical_count``;
* TensorRT-LLM ExpertStatistic directories: ``meta_info.json`` plus
  ``rank{r}.safetensors`` with keys ``"{iter}_{layer}"`` (summed over ranks);
* vLLM's proposed JSONL ``eplb_load_stats`` records (physical loads mapped back
  through ``p2l_map``).

Layers that carry no load anywhere in the trace (dense layers in SGLang and TRT-LLM
dumps) are dropped. Bad files raise :class:`TraceError` naming the file and the place.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

DEFAULT_JSON_WINDOW = 100


class TraceError(ValueError):
    """A trace that cannot be used; the message names the file and the place."""


def _dense(path: Path, data, where: str) -> np.ndarray:
    """``data`` as a float64 array, refusing ragged rows with the place they start."""
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.dtype == object:
        raise TraceError(f"{path}: {where}: ragged rows ({_first_ragged(data)})")
    return arr


def _first_ragged(data, prefix: str = "") -> str:
    if isinstance(data, list | tuple) and data and isinstance(data[0], list | tuple):
        width = len(data[0])
        for i, row in enumerate(data):
            if not isinstance(row, list | tuple) or len(row) != width:
                return f"row {prefix}[{i}] has {len(row) if isinstance(row, list | tuple) else 'no'} entries, " \
                       f"row {prefix}[0] has {width}"
            inner = _first_ragged(row, f"{prefix}[{i}]")
            if inner:
                return inner
    return ""


def _json_history(path: Path, raw: dict) -> np.ndarray:
    history = raw["load_history"]
    if not isinstance(history, list) or not history:
        raise TraceError(f"{path}: load_history must be a non-empty list")
    steps = []
    for i, entry in enumerate(history):
        if not isinstance(entry, dict) or "logical_expert_load" not in entry:
            raise TraceError(f"{path}: load_history[{i}] has no logical_expert_load")
        steps.append(_dense(path, entry["logical_expert_load"], f"load_history[{i}].logical_expert_load"))
    shapes = {s.shape for s in steps}
    if len(shapes) > 1:
        first = next(i for i, s in enumerate(steps) if s.shape != steps[0].shape)
        raise TraceError(f"{path}: load_history[{first}] has shape {list(steps[first].shape)}, "
                         f"load_history[0] has {list(steps[0].shape)}")
    return np.stack(steps)


def _physical_to_logical(path: Path, counts: np.ndarray, p2l: np.ndarray, num_experts: int | None,
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


def _load_json(path: Path) -> tuple[np.ndarray, int]:
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: not valid JSON: {exc}") from None
    if isinstance(raw, dict) and "load_history" in raw:
        return _json_history(path, raw), DEFAULT_JSON_WINDOW
    if isinstance(raw, dict) and "logical_count" in raw:
        arr = _dense(path, raw["logical_count"], "logical_count")
        return (arr[None] if arr.ndim == 2 else arr), 1
    if isinstance(raw, dict) and "layer_list" in raw:
        raise TraceError(f"{path}: an expert map (a placement), not a load trace")
    raise TraceError(f"{path}: JSON with neither load_history nor logical_count")


def _load_jsonl(path: Path, num_experts: int | None) -> tuple[np.ndarray, int]:
    steps = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{path}: line {n}: not valid JSON: {exc.msg}") from None
        if record.get("record_type") != "eplb_load_stats":
            continue
        if "expert_load" not in record or "p2l_map" not in record:
            raise TraceError(f"{path}: line {n}: eplb_load_stats record needs expert_load and p2l_map")
        load = _dense(path, record["expert_load"], f"line {n} expert_load")
        p2l = _dense(path, record["p2l_map"], f"line {n} p2l_map")
        steps.append(_physical_to_logical(path, load[None], p2l, num_experts, f"line {n}")[0])
    if not steps:
        raise TraceError(f"{path}: no eplb_load_stats record")
    return np.stack(steps), 1


def _load_pt(path: Path, num_experts: int | None) -> tuple[np.ndarray, int]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a bad file
        raise TraceError(f"{path}: not a readable torch file: {exc.__class__.__name__}") from None
    def numbers(value, where: str) -> np.ndarray:
        try:
            tensor = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TraceError(f"{path}: {where}: not an array of numbers ({exc.__class__.__name__})") from None
        if tensor.is_complex() or tensor.dtype == torch.bool:
            raise TraceError(f"{path}: {where}: {tensor.dtype} values are not loads")
        return tensor.double().numpy()

    if isinstance(obj, torch.Tensor):
        arr = numbers(obj, "tensor")
        return (arr[None] if arr.ndim == 2 else arr), 1
    if isinstance(obj, dict) and "logical_count" in obj:  # SGLang stat / init-expert-location
        arr = numbers(obj["logical_count"], "logical_count")
        return (arr[None] if arr.ndim == 2 else arr), 1
    if isinstance(obj, dict) and "records" in obj:  # SGLang per_pass
        if "last_physical_to_logical_map" not in obj:
            raise TraceError(f"{path}: SGLang per_pass dump without last_physical_to_logical_map")
        p2l = numbers(obj["last_physical_to_logical_map"], "last_physical_to_logical_map")
        if not isinstance(obj["records"], list | tuple) or not obj["records"]:
            raise TraceError(f"{path}: records must be a non-empty list")
        counts = []
        for i, rec in enumerate(obj["records"]):
            if not isinstance(rec, dict) or "global_physical_count" not in rec:
                raise TraceError(f"{path}: records[{i}] has no global_physical_count")
            counts.append(numbers(rec["global_physical_count"], f"records[{i}].global_physical_count"))
        if len({c.shape for c in counts}) > 1 or counts[0].ndim != 2 or p2l.ndim != 2:
            raise TraceError(f"{path}: records need [layers, slots] counts of one shape, and a [layers, slots] map")
        return _physical_to_logical(path, np.stack(counts), p2l, num_experts, "records"), 1
    raise TraceError(f"{path}: torch file holds neither a tensor nor an SGLang dump")


def _load_trtllm(path: Path) -> tuple[np.ndarray, int]:
    from safetensors.numpy import load_file

    meta_path = path / "meta_info.json"
    try:
        meta = json.loads(meta_path.read_text())
        num_experts = int(meta["num_experts"])
    except (OSError, json.JSONDecodeError, KeyError, ValueError):
        raise TraceError(f"{meta_path}: missing or without num_experts") from None
    ranks = sorted(path.glob("rank*.safetensors"))
    if not ranks:
        raise TraceError(f"{path}: no rank*.safetensors file")
    totals: dict[tuple[int, int], np.ndarray] = {}
    for rank_file in ranks:
        for key, value in load_file(str(rank_file)).items():
            try:
                it, layer = (int(x) for x in key.split("_"))
            except ValueError:
                raise TraceError(f"{rank_file}: key {key!r} is not '{{iter}}_{{layer}}'") from None
            if value.shape != (num_experts,):
                raise TraceError(f"{rank_file}: {key} has shape {list(value.shape)}, expected [{num_experts}]")
            totals[(it, layer)] = totals.get((it, layer), 0) + value.astype(np.float64)
    iters = sorted({k[0] for k in totals})
    layers = sorted({k[1] for k in totals})
    out = np.zeros((len(iters), len(layers), num_experts))
    for (it, layer), value in totals.items():
        out[iters.index(it), layers.index(layer)] = value
    return out, 1


def _load_csv(path: Path) -> tuple[np.ndarray, int]:
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except Exception as exc:  # pandas raises several parser errors
        raise TraceError(f"{path}: not readable CSV: {exc.__class__.__name__}") from None
    missing = {"step", "layer", "expert", "load"} - set(df.columns)
    if missing:
        raise TraceError(f"{path}: CSV lacks column(s) {', '.join(sorted(missing))}")
    for col in ("step", "layer", "expert"):
        if not pd.api.types.is_integer_dtype(df[col]) or (df[col] < 0).any():
            raise TraceError(f"{path}: column {col} must hold non-negative integers")
    load = pd.to_numeric(df["load"], errors="coerce")
    bad = load.isna() & df["load"].notna()
    if bad.any():
        raise TraceError(f"{path}: line {int(bad.idxmax()) + 2}: load {df['load'][bad.idxmax()]!r} is not a number")
    out = np.zeros((df["step"].max() + 1, df["layer"].max() + 1, df["expert"].max() + 1))
    # A NaN load stays NaN in the sum, so check_loads reports where it is.
    np.add.at(out, (df["step"].to_numpy(), df["layer"].to_numpy(), df["expert"].to_numpy()), load.to_numpy())
    return out, 1


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


def read_records(path: str | Path, num_experts: int | None = None) -> tuple[np.ndarray, int]:
    """Per-record loads ``[S, L, E]`` and the format's default window, by file type."""
    path = Path(path)
    if path.is_dir():
        return _load_trtllm(path)
    if not path.is_file():
        raise TraceError(f"{path}: no such file or directory")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _load_json(path)
    if suffix == ".jsonl":
        return _load_jsonl(path, num_experts)
    if suffix in (".pt", ".pth"):
        return _load_pt(path, num_experts)
    if suffix == ".csv":
        return _load_csv(path)
    if suffix in (".npy", ".npz"):
        arr = _load_numpy(path, suffix)
        return (arr[None] if arr.ndim == 2 else arr), 1
    raise TraceError(f"{path}: unknown trace format {suffix!r} (json, jsonl, pt, npy, npz, csv, or a TRT-LLM dir)")


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
