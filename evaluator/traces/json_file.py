"""JSON: a load history ``{"load_history": [{"logical_expert_load": [[...] per layer]}, ...]}`` (one
entry per step; default window 100 steps), or SGLang ``--init-expert-location`` JSON with ``logical_count``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluator.traces.base import TRACE_FORMATS, TraceError, TraceFormat, dense

DEFAULT_JSON_WINDOW = 100


@TRACE_FORMATS.register("json")
@dataclass(frozen=True)
class JsonTrace(TraceFormat):
    suffixes = ('.json',)
    directory = False

    def read(self, path: Path, num_experts: int | None) -> tuple[np.ndarray, int]:
        return _load_json(path)


def _load_json(path: Path) -> tuple[np.ndarray, int]:
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: not valid JSON: {exc}") from None
    if isinstance(raw, dict) and "load_history" in raw:
        return _json_history(path, raw), DEFAULT_JSON_WINDOW
    if isinstance(raw, dict) and "logical_count" in raw:
        arr = dense(path, raw["logical_count"], "logical_count")
        return (arr[None] if arr.ndim == 2 else arr), 1
    if isinstance(raw, dict) and "layer_list" in raw:
        raise TraceError(f"{path}: an expert map (a placement), not a load trace")
    raise TraceError(f"{path}: JSON with neither load_history nor logical_count")


def _json_history(path: Path, raw: dict) -> np.ndarray:
    history = raw["load_history"]
    if not isinstance(history, list) or not history:
        raise TraceError(f"{path}: load_history must be a non-empty list")
    steps = []
    for i, entry in enumerate(history):
        if not isinstance(entry, dict) or "logical_expert_load" not in entry:
            raise TraceError(f"{path}: load_history[{i}] has no logical_expert_load")
        steps.append(dense(path, entry["logical_expert_load"], f"load_history[{i}].logical_expert_load"))
    shapes = {s.shape for s in steps}
    if len(shapes) > 1:
        first = next(i for i, s in enumerate(steps) if s.shape != steps[0].shape)
        raise TraceError(f"{path}: load_history[{first}] has shape {list(steps[first].shape)}, "
                         f"load_history[0] has {list(steps[0].shape)}")
    return np.stack(steps)
