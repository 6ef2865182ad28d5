"""TensorRT-LLM ExpertStatistic directories: ``meta_info.json`` plus ``rank{r}.safetensors`` with keys
``"{iter}_{layer}"`` (summed over ranks)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluator.traces.base import TRACE_FORMATS, TraceError, TraceFormat


@TRACE_FORMATS.register("trtllm")
@dataclass(frozen=True)
class TrtllmTrace(TraceFormat):
    suffixes = ()
    directory = True

    def read(self, path: Path, num_experts: int | None) -> tuple[np.ndarray, int]:
        return _load_trtllm(path)


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
