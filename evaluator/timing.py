"""Wall-clock timing of one call: warm-up, repeats, median and spread."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TimingStats:
    """Seconds per call over ``repeats`` timed calls made after ``warmup`` untimed ones."""

    median_s: float
    min_s: float
    max_s: float
    iqr_s: float
    repeats: int
    warmup: int

    def to_dict(self) -> dict:
        return asdict(self)


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> TimingStats:
    """Time ``fn()`` alone: nothing but the call sits between the two clock reads."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    q = statistics.quantiles(samples, n=4) if repeats > 1 else [samples[0]] * 3
    return TimingStats(
        median_s=statistics.median(samples),
        min_s=min(samples),
        max_s=max(samples),
        iqr_s=q[2] - q[0],
        repeats=repeats,
        warmup=warmup,
    )
