"""Wall-clock timing of one call: warm-up, repeats, median and spread."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

# glibc raises its malloc thresholds to the size of a large block once it is freed, up to 32 MiB.
_ALLOCATOR_WARMUP_BYTES = 16 << 20


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


def warm_allocator() -> None:
    """Give the process's C allocator the state a long-running serving process has.

    A fresh process's glibc malloc hands freed memory at the top of its heap back to the
    OS as soon as more than a few hundred KiB are free. A call that allocates and frees
    a few MiB then page-faults all of it in again on every call (in a fresh process,
    600 faults per call for 2.5 MiB, about 1 ms here). A serving engine has long since
    freed large tensors, which raises those thresholds (up to 32 MiB), so the same call
    does not fault there. Freeing one large, never touched block raises them here too.
    Harmless with other allocators: one malloc and free of untouched memory. Skipped
    when a tight address-space limit refuses the block.
    """
    try:
        np.empty(_ALLOCATOR_WARMUP_BYTES, dtype=np.uint8)
    except MemoryError:
        pass


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> TimingStats:
    """Time ``fn()`` alone: nothing but the call sits between the two clock reads.

    The allocator is warmed first (:func:`warm_allocator`), the same for every policy.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    warm_allocator()
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
