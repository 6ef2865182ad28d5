"""The ``group_skewed`` workload family."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluator.presets import Preset
from evaluator.workloads.base import WORKLOADS, Workload, jittered


@WORKLOADS.register("group_skewed")
@dataclass(frozen=True)
class GroupSkewed(Workload):
    """Whole expert groups are hot: group popularity is log-normal with ``group_sigma``.

    Groups are the preset's router groups, or blocks of 8 consecutive experts when
    the router has none. This is what defeats packing whole groups onto nodes.
    """

    group_sigma: float = 1.5

    def popularity(self, rng: np.random.Generator, preset: Preset, windows: int) -> np.ndarray:
        num_groups = preset.num_groups if preset.num_groups > 1 else max(1, preset.num_experts // 8)
        group_size = preset.num_experts // num_groups
        group_pop = rng.lognormal(0.0, self.group_sigma, size=(preset.num_layers, num_groups))
        inner = rng.lognormal(0.0, 0.3, size=(preset.num_layers, preset.num_experts))
        base = np.repeat(group_pop, group_size, axis=1) * inner
        return jittered(base, rng, windows)
