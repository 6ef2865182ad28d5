"""Generators of trace-shaped expert-load histories. SYNTHETIC: no real traffic went into them.

Two models. :func:`noisy_windows` is the small-drift regime of the migration question:
a workload family's first window, then each window the previous one multiplied by
``1 + noise * N(0, 1)`` per expert (written as a dense ``.npy`` of windows). The step
model below is for longer traces:

It writes the JSON load-history format (one entry per step) with a ``"synthetic": true``
marker and its parameters, so a file can never be mistaken for a recorded trace. Per
step and layer, expert popularity is a heavy-tailed (Pareto) base that drifts (log
random walk), mixes between a "day" and a "night" profile on a sinusoidal cycle that
also modulates volume, and has bursts (a few experts spike for several steps).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from evaluator.presets import Preset
from evaluator.workloads import generate


def noisy_windows(preset: Preset, windows: int, noise: float = 0.01, family: str = "zipf",
                  seed: int = 0) -> np.ndarray:
    """Loads ``[windows, L, E]`` (float64): ``family``'s first window, then multiplicative noise per window."""
    rng = np.random.default_rng(seed)
    out = np.empty((windows, preset.num_layers, preset.num_experts))
    out[0] = generate(family, preset, seed, windows=1)[0]
    for t in range(1, windows):
        out[t] = out[t - 1] * np.clip(1 + noise * rng.standard_normal(out[t - 1].shape), 0.0, None)
    return out


def write_noisy_windows(path: str | Path, preset: Preset, windows: int, noise: float = 0.01, family: str = "zipf",
                        seed: int = 0) -> Path:
    """Write :func:`noisy_windows` as a dense ``.npy`` trace (one record per window)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, noisy_windows(preset, windows, noise, family, seed))
    return path


def synthetic_steps(preset: Preset, steps: int, seed: int = 0, tokens_per_step: int = 4096, tail: float = 1.2,
                    drift: float = 0.02, cycle_steps: int = 2000, burst_rate: float = 0.002,
                    burst_factor: float = 6.0, burst_steps: int = 50) -> np.ndarray:
    """Token counts ``[steps, L, E]`` (int64); see the module docstring for the model."""
    rng = np.random.default_rng(seed)
    L, E = preset.num_layers, preset.num_experts
    day = np.log(rng.pareto(tail, (L, E)) + 1.0)
    night = np.log(rng.pareto(tail, (L, E)) + 1.0)
    walk = np.zeros((L, E))
    burst_left = np.zeros((L, E), dtype=np.int64)
    out = np.empty((steps, L, E), dtype=np.int64)
    for s in range(steps):
        phase = 0.5 * (1 + np.sin(2 * np.pi * s / cycle_steps))
        walk += rng.normal(0.0, drift, (L, E))
        burst_left = np.maximum(burst_left - 1, 0)
        starts = rng.random((L, E)) < burst_rate
        burst_left[starts] = burst_steps
        logits = phase * day + (1 - phase) * night + walk + np.log(np.where(burst_left > 0, burst_factor, 1.0))
        popularity = np.exp(logits - logits.max(axis=1, keepdims=True))
        popularity /= popularity.sum(axis=1, keepdims=True)
        volume = int(tokens_per_step * preset.top_k * (0.5 + 0.5 * phase))
        out[s] = rng.multinomial(volume, popularity)
    return out


def write_synthetic_trace(path: str | Path, preset: Preset, steps: int, seed: int = 0, **params) -> Path:
    """Write ``synthetic_steps`` as a JSON load history marked synthetic."""
    loads = synthetic_steps(preset, steps, seed, **params)
    payload = {
        "synthetic": True,
        "generator": "eplb-harness evaluator/synthetic_traces.py",
        "preset": preset.name,
        "seed": seed,
        "params": params,
        "load_history": [{"logical_expert_load": step.tolist()} for step in loads],
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path
