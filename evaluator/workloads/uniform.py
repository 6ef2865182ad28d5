"""The ``uniform`` workload family."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluator.presets import Preset
from evaluator.workloads.base import WORKLOADS, Workload, jittered


@WORKLOADS.register("uniform")
@dataclass(frozen=True)
class Uniform(Workload):
    """Every expert equally popular; only sampling noise separates them."""

    def popularity(self, rng: np.random.Generator, preset: Preset, windows: int) -> np.ndarray:
        base = np.ones((preset.num_layers, preset.num_experts))
        return jittered(base, rng, windows)
