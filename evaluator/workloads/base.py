"""What every workload family shares: the registry, the window jitter and the sampler of token counts.

A family is a frozen dataclass registered under its name; its fields are the options a
case may set (``Case("zipf", ..., params=(("exponent", 1.2),))``), checked by the
registry; :meth:`Workload.popularity` gives the per-window expert popularity
``[T, L, E]`` and :func:`generate` samples token counts from it.
"""

from __future__ import annotations

import numpy as np

from evaluator.presets import Preset
from evaluator.registry import Registry

# Tokens routed per layer per window: about 100 decode steps of 64 sequences
# each picking top_k experts (real windows are larger; larger only lowers noise).
STEPS_PER_WINDOW = 100
TOKENS_PER_STEP = 64

# Popularity changes a little from window to window even in "stationary" traffic.
WINDOW_JITTER = 0.1


class Workload:
    """A family of expert-load histories; subclasses are dataclasses whose fields are its options."""

    def popularity(self, rng: np.random.Generator, preset: Preset, windows: int) -> np.ndarray:
        """Per-window expert popularity ``[windows, L, E]``, each row summing to 1."""
        raise NotImplementedError


WORKLOADS: Registry[Workload] = Registry("workload family")


def normalise(x: np.ndarray) -> np.ndarray:
    return x / x.sum(axis=-1, keepdims=True)


def jittered(base: np.ndarray, rng: np.random.Generator, windows: int) -> np.ndarray:
    """``[T, L, E]`` popularity: ``base [L, E]`` times per-window log-normal jitter."""
    noise = rng.lognormal(0.0, WINDOW_JITTER, size=(windows, *base.shape))
    return normalise(base[None] * noise)


def generate(family: str, preset: Preset, seed: int, windows: int = 4, params: dict | None = None) -> np.ndarray:
    """Token counts ``[windows, L, E]`` (int64) of ``family`` for ``preset``, reproducible from ``seed``.

    An unknown family or option is a one-line ``ValueError``.
    """
    workload = WORKLOADS.create(family, params)
    rng = np.random.default_rng(seed)
    popularity = workload.popularity(rng, preset, windows)
    tokens = STEPS_PER_WINDOW * TOKENS_PER_STEP * preset.top_k
    return rng.multinomial(tokens, popularity).astype(np.int64)
