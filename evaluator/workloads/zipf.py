"""The ``zipf`` workload family."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluator.presets import Preset
from evaluator.workloads.base import WORKLOADS, Workload, jittered


@WORKLOADS.register("zipf")
@dataclass(frozen=True)
class Zipf(Workload):
    """Popularity of the expert ranked r is proportional to ``r ** -exponent`` (random ranks per layer)."""

    exponent: float = 1.0

    def popularity(self, rng: np.random.Generator, preset: Preset, windows: int) -> np.ndarray:
        ranks = np.argsort(rng.random((preset.num_layers, preset.num_experts)), axis=-1) + 1
        return jittered(ranks.astype(float) ** -self.exponent, rng, windows)
