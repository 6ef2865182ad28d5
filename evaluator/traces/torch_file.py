"""A ``.pt`` tensor ``[S, L, E]``/``[L, E]``, or an SGLang expert-distribution dump: ``stat`` mode
``{"logical_count": [S, L, E]}``, ``per_pass`` mode ``{"records": [{"global_physical_count": [L, R]}, ...],
"last_physical_to_logical_map": [L, R]}``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluator.traces.base import TRACE_FORMATS, TraceError, TraceFormat, physical_to_logical


@TRACE_FORMATS.register("pt")
@dataclass(frozen=True)
class TorchTrace(TraceFormat):
    suffixes = ('.pt', '.pth')
    directory = False

    def read(self, path: Path, num_experts: int | None) -> tuple[np.ndarray, int]:
        return _load_pt(path, num_experts)


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
        return physical_to_logical(path, np.stack(counts), p2l, num_experts, "records"), 1
    raise TraceError(f"{path}: torch file holds neither a tensor nor an SGLang dump")
