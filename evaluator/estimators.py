"""Load estimators a replayed balancer rebalances from: what it can know at window ``t`` (windows ``< t``).

Each is a dataclass registered in :data:`ESTIMATORS`; its fields are its options
(``ESTIMATORS.create("sliding", {"span": 8})``), checked by the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluator.registry import Registry


class Estimator:
    def estimate(self, windows: np.ndarray, t: int) -> np.ndarray:
        """The estimate ``[L, E]`` at the start of window ``t`` from ``windows [T, L, E]`` (only ``< t`` used)."""
        raise NotImplementedError


ESTIMATORS: Registry[Estimator] = Registry("estimator")


@ESTIMATORS.register("last")
@dataclass(frozen=True)
class LastWindow(Estimator):
    """The window just seen."""

    def estimate(self, windows: np.ndarray, t: int) -> np.ndarray:
        return windows[t - 1]


@ESTIMATORS.register("sliding")
@dataclass(frozen=True)
class SlidingSum(Estimator):
    """The sum of the last ``span`` windows."""

    span: int = 4

    def __post_init__(self) -> None:
        if self.span < 1:
            raise ValueError("estimator 'sliding': span must be >= 1")

    def estimate(self, windows: np.ndarray, t: int) -> np.ndarray:
        return windows[max(0, t - self.span) : t].sum(axis=0)


@ESTIMATORS.register("ema")
@dataclass(frozen=True)
class ExponentialAverage(Estimator):
    """An exponential moving average with weight ``alpha`` on the newest window."""

    alpha: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise ValueError("estimator 'ema': alpha must be in (0, 1]")

    def estimate(self, windows: np.ndarray, t: int) -> np.ndarray:
        est = windows[0].astype(np.float64)
        for w in windows[1:t]:
            est = self.alpha * w + (1 - self.alpha) * est
        return est
