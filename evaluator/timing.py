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


def relabelling(rng: np.random.Generator, num_layers: int, num_experts: int, num_groups: int) -> np.ndarray:
    """``perm [L, E]``: a random renaming of each layer's experts that keeps expert groups whole.

    New expert ``j`` of layer ``l`` is old expert ``perm[l, j]``; groups (of ``E / num_groups``
    consecutive experts) are shuffled as wholes and experts shuffled within their group.
    """
    size = num_experts // num_groups
    groups = np.argsort(rng.random((num_layers, num_groups)), axis=1)
    within = np.argsort(rng.random((num_layers, num_groups, size)), axis=2)
    return (groups[:, :, None] * size + np.take_along_axis(within, groups[:, :, None], axis=1)).reshape(
        num_layers, num_experts)


def timing_windows(history: np.ndarray, count: int, rng: np.random.Generator, num_groups: int = 1,
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` inputs ``(weight [L, E], perm [L, E])`` for timed calls, cycling over the windows of ``history``.

    Each is a window of ``history [T, L, E]`` with its experts renamed (:func:`relabelling`)
    and a 0/1 token added to every entry at random (a relative 1e-3 jitter for float
    loads): no two calls get the same content, so a policy that caches answers by the
    input's identity or content gains nothing, and an answer computed for another call
    places the wrong experts together, which its balance shows. A policy that treats
    experts alike balances each as well as the window it came from.
    """
    out, seen = [], set()
    num_layers, num_experts = history.shape[1:]
    while len(out) < count:
        window = history[len(out) % len(history)]
        perm = relabelling(rng, num_layers, num_experts, num_groups)
        renamed = np.take_along_axis(window, perm, axis=1)
        if np.issubdtype(window.dtype, np.integer):
            weight = renamed + rng.integers(0, 2, size=window.shape, dtype=window.dtype)
        else:
            weight = renamed * (1 + 1e-3 * rng.random(window.shape))
        key = weight.tobytes()
        if key not in seen:
            seen.add(key)
            out.append((weight, perm))
    return out
