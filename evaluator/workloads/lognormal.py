"""The ``lognormal`` workload family."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluator.presets import Preset
from evaluator.workloads.base import WORKLOADS, Workload, jittered


@WORKLOADS.register("lognormal")
@dataclass(frozen=True)
class LogNormal(Workload):
    """Log-normal popularity with the given ``sigma``."""

    sigma: float = 1.0

    def popularity(self, rng: np.random.Generator, preset: Preset, windows: int) -> np.ndarray:
        base = rng.lognormal(0.0, self.sigma, size=(preset.num_layers, preset.num_experts))
        return jittered(base, rng, windows)
