"""Timing of the rebalance call: unmemoisable inputs, and median and spread of the samples.

The seconds themselves are measured by whoever makes the call (the harness, with its
own clock, around a call into a sandboxed worker); this module chooses what each timed
call is given and summarises what was measured.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class TimingStats:
    """Seconds per call over ``repeats`` timed calls made after ``warmup`` untimed ones."""

    median_s: float
    min_s: float
    max_s: float
    iqr_s: float
    repeats: int
    warmup: int

    @classmethod
    def from_samples(cls, samples: list[float], warmup: int) -> TimingStats:
        if not samples:
            raise ValueError("no timed call")
        q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
        return cls(statistics.median(samples), min(samples), max(samples), q[2] - q[0], len(samples), warmup)

    def to_dict(self) -> dict:
        return asdict(self)


def timing_windows(history: np.ndarray, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` distinct inputs ``[L, E]`` for timed calls, cycling over the windows of ``history [T, L, E]``.

    Each is a fresh array whose content no other call gets (a 0/1 token added to every
    entry at random, or a relative 1e-3 jitter for float loads): a policy that caches
    its answer by the input's identity or content gains nothing, and none of them is a
    window it will be scored on.
    """
    out, seen = [], set()
    while len(out) < count:
        window = history[len(out) % len(history)]
        if np.issubdtype(window.dtype, np.integer):
            candidate = window + rng.integers(0, 2, size=window.shape, dtype=window.dtype)
        else:
            candidate = window * (1 + 1e-3 * rng.random(window.shape))
        key = candidate.tobytes()
        if key not in seen:
            seen.add(key)
            out.append(candidate)
    return out
