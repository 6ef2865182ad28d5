"""The ``drifting`` workload family."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluator.presets import Preset
from evaluator.workloads.base import WORKLOADS, Workload, normalise


@WORKLOADS.register("drifting")
@dataclass(frozen=True)
class Drifting(Workload):
    """Log-normal popularity whose log follows a random walk of step ``drift`` per window."""

    sigma: float = 1.0
    drift: float = 0.4

    def popularity(self, rng: np.random.Generator, preset: Preset, windows: int) -> np.ndarray:
        log_pop = rng.normal(0.0, self.sigma, size=(preset.num_layers, preset.num_experts))
        out = np.empty((windows, preset.num_layers, preset.num_experts))
        for t in range(windows):
            out[t] = np.exp(log_pop)
            log_pop = log_pop + rng.normal(0.0, self.drift, size=log_pop.shape)
        return normalise(out)
