"""vLLM's proposed JSONL ``eplb_load_stats`` records (physical loads mapped back through ``p2l_map``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluator.traces.base import TRACE_FORMATS, TraceError, TraceFormat, dense, physical_to_logical


@TRACE_FORMATS.register("jsonl")
@dataclass(frozen=True)
class VllmJsonlTrace(TraceFormat):
    suffixes = ('.jsonl',)
    directory = False

    def read(self, path: Path, num_experts: int | None) -> tuple[np.ndarray, int]:
        return _load_jsonl(path, num_experts)


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
        load = dense(path, record["expert_load"], f"line {n} expert_load")
        p2l = dense(path, record["p2l_map"], f"line {n} p2l_map")
        steps.append(physical_to_logical(path, load[None], p2l, num_experts, f"line {n}")[0])
    if not steps:
        raise TraceError(f"{path}: no eplb_load_stats record")
    return np.stack(steps), 1
