"""Seeded synthetic expert-load histories.

Every family returns integer token counts ``[T, L, E]`` (``T`` windows, ``L`` MoE
layers, ``E`` experts) drawn as multinomial samples of a per-window expert
popularity, so that consecutive windows differ by drift and by sampling noise as
real windows do. The same ``(family, preset, seed, params)`` always gives the
same history.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from evaluator.presets import Preset

# Tokens routed per layer per window: about 100 decode steps of 64 sequences
# each picking top_k experts (real windows are larger; larger only lowers noise).
STEPS_PER_WINDOW = 100
TOKENS_PER_STEP = 64

# Popularity changes a little from window to window even in "stationary" traffic.
WINDOW_JITTER = 0.1

Popularity = Callable[[np.random.Generator, Preset, int, dict], np.ndarray]


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / x.sum(axis=-1, keepdims=True)


def _jittered(base: np.ndarray, rng: np.random.Generator, windows: int) -> np.ndarray:
    """``[T, L, E]`` popularity: ``base [L, E]`` times per-window log-normal jitter."""
    noise = rng.lognormal(0.0, WINDOW_JITTER, size=(windows, *base.shape))
    return _normalise(base[None] * noise)


def uniform(rng: np.random.Generator, preset: Preset, windows: int, params: dict) -> np.ndarray:
    """Every expert equally popular; only sampling noise separates them."""
    base = np.ones((preset.num_layers, preset.num_experts))
    return _jittered(base, rng, windows)


def zipf(rng: np.random.Generator, preset: Preset, windows: int, params: dict) -> np.ndarray:
    """Popularity of the expert ranked r is proportional to ``r ** -exponent`` (random ranks per layer)."""
    exponent = params.get("exponent", 1.0)
    ranks = np.argsort(rng.random((preset.num_layers, preset.num_experts)), axis=-1) + 1
    return _jittered(ranks.astype(float) ** -exponent, rng, windows)


def lognormal(rng: np.random.Generator, preset: Preset, windows: int, params: dict) -> np.ndarray:
    """Log-normal popularity with the given ``sigma``."""
    sigma = params.get("sigma", 1.0)
    base = rng.lognormal(0.0, sigma, size=(preset.num_layers, preset.num_experts))
    return _jittered(base, rng, windows)


def hotspot(rng: np.random.Generator, preset: Preset, windows: int, params: dict) -> np.ndarray:
    """A few hot experts per layer (``num_hot``) carry ``hot_share`` of the load."""
    num_hot = min(params.get("num_hot", 4), preset.num_experts - 1)
    hot_share = params.get("hot_share", 0.5)
    base = np.full((preset.num_layers, preset.num_experts), (1 - hot_share) / (preset.num_experts - num_hot))
    for layer in range(preset.num_layers):
        hot = rng.choice(preset.num_experts, size=num_hot, replace=False)
        base[layer, hot] = hot_share / num_hot
    return _jittered(base, rng, windows)


def group_skewed(rng: np.random.Generator, preset: Preset, windows: int, params: dict) -> np.ndarray:
    """Whole expert groups are hot: group popularity is log-normal with ``group_sigma``.

    Groups are the preset's router groups, or blocks of 8 consecutive experts when
    the router has none. This is what defeats packing whole groups onto nodes.
    """
    group_sigma = params.get("group_sigma", 1.5)
    num_groups = preset.num_groups if preset.num_groups > 1 else max(1, preset.num_experts // 8)
    group_size = preset.num_experts // num_groups
    group_pop = rng.lognormal(0.0, group_sigma, size=(preset.num_layers, num_groups))
    inner = rng.lognormal(0.0, 0.3, size=(preset.num_layers, preset.num_experts))
    base = np.repeat(group_pop, group_size, axis=1) * inner
    return _jittered(base, rng, windows)


def drifting(rng: np.random.Generator, preset: Preset, windows: int, params: dict) -> np.ndarray:
    """Log-normal popularity whose log follows a random walk of step ``drift`` per window."""
    sigma = params.get("sigma", 1.0)
    drift = params.get("drift", 0.4)
    log_pop = rng.normal(0.0, sigma, size=(preset.num_layers, preset.num_experts))
    out = np.empty((windows, preset.num_layers, preset.num_experts))
    for t in range(windows):
        out[t] = np.exp(log_pop)
        log_pop = log_pop + rng.normal(0.0, drift, size=log_pop.shape)
    return _normalise(out)


def bursty(rng: np.random.Generator, preset: Preset, windows: int, params: dict) -> np.ndarray:
    """Log-normal popularity where, in each window, a ``burst_share`` of experts spike ``burst_factor`` x."""
    sigma = params.get("sigma", 0.7)
    burst_share = params.get("burst_share", 0.03)
    burst_factor = params.get("burst_factor", 8.0)
    base = rng.lognormal(0.0, sigma, size=(preset.num_layers, preset.num_experts))
    spikes = rng.random((windows, preset.num_layers, preset.num_experts)) < burst_share
    return _normalise(base[None] * np.where(spikes, burst_factor, 1.0))


FAMILIES: dict[str, Popularity] = {
    "uniform": uniform,
    "zipf": zipf,
    "lognormal": lognormal,
    "hotspot": hotspot,
    "group_skewed": group_skewed,
    "drifting": drifting,
    "bursty": bursty,
}


def generate(family: str, preset: Preset, seed: int, windows: int = 4, params: dict | None = None) -> np.ndarray:
    """Token counts ``[windows, L, E]`` (int64) of ``family`` for ``preset``, reproducible from ``seed``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown workload family {family!r}; known: {', '.join(FAMILIES)}")
    rng = np.random.default_rng(seed)
    popularity = FAMILIES[family](rng, preset, windows, dict(params or {}))
    tokens = STEPS_PER_WINDOW * TOKENS_PER_STEP * preset.top_k
    return rng.multinomial(tokens, popularity).astype(np.int64)
