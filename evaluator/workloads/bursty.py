"""The ``bursty`` workload family."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluator.presets import Preset
from evaluator.workloads.base import WORKLOADS, Workload, normalise


@WORKLOADS.register("bursty")
@dataclass(frozen=True)
class Bursty(Workload):
    """Log-normal popularity where, in each window, a ``burst_share`` of experts spike ``burst_factor`` x."""

    sigma: float = 0.7
    burst_share: float = 0.03
    burst_factor: float = 8.0

    def popularity(self, rng: np.random.Generator, preset: Preset, windows: int) -> np.ndarray:
        base = rng.lognormal(0.0, self.sigma, size=(preset.num_layers, preset.num_experts))
        spikes = rng.random((windows, preset.num_layers, preset.num_experts)) < self.burst_share
        return normalise(base[None] * np.where(spikes, self.burst_factor, 1.0))
