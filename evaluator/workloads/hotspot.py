"""The ``hotspot`` workload family."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluator.presets import Preset
from evaluator.workloads.base import WORKLOADS, Workload, jittered


@WORKLOADS.register("hotspot")
@dataclass(frozen=True)
class Hotspot(Workload):
    """A few hot experts per layer (``num_hot``) carry ``hot_share`` of the load."""

    num_hot: float = 4  # a float like every case parameter; used as a whole number
    hot_share: float = 0.5

    def popularity(self, rng: np.random.Generator, preset: Preset, windows: int) -> np.ndarray:
        num_hot = min(int(self.num_hot), preset.num_experts - 1)
        base = np.full((preset.num_layers, preset.num_experts), (1 - self.hot_share) / (preset.num_experts - num_hot))
        for layer in range(preset.num_layers):
            hot = rng.choice(preset.num_experts, size=num_hot, replace=False)
            base[layer, hot] = self.hot_share / num_hot
        return jittered(base, rng, windows)
