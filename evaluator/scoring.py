"""The evaluation protocol: placements from window t, scored on window t + 1.

This is how a deployed balancer works (it balances for the traffic it saw); the
same-window ("oracle") score is reported beside it, free of prediction error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from evaluator.metrics import balancedness, gpu_loads, per_layer_balancedness, placement_balance
from evaluator.migration import migration
from evaluator.presets import Preset
from evaluator.timing import TimingStats, timing_windows
from evaluator.validation import validate_on

RebalanceFn = Callable[..., object]

# The most windows a policy is shown as ``load_history``: what a deployed balancer would
# keep, and a bound on what crosses into the sandbox per call.
HISTORY_WINDOWS = 8


def history_before(windows: np.ndarray, t: int) -> torch.Tensor:
    """``load_history [k, L, E]``: the last :data:`HISTORY_WINDOWS` windows of ``windows [T, L, E]`` before ``t``."""
    return torch.from_numpy(np.ascontiguousarray(windows[max(0, t - HISTORY_WINDOWS):t]))


def compute_placements(
    rebalance: RebalanceFn, history: np.ndarray, preset: Preset
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Validated ``(phy2log, log2phy, logcnt)`` for each window of ``history [T, L, E]``.

    ``rebalance(weight, *shape, previous_phy2log=..., load_history=...)`` receives the
    placement it produced for the window before (None for the first) and the windows
    before this one (:func:`history_before`), as a deployed balancer would; never a
    window after the one it balances.

    Raises:
        evaluator.validation.InvalidPlacement: when any window's output is not a placement
            (:class:`~evaluator.validation.ConstraintViolation` when the deployment forbids it).
    """
    placements = []
    for t, window in enumerate(history):
        previous = placements[-1][0] if placements else None
        output = rebalance(torch.from_numpy(window.copy()), *preset.rebalance_args(), previous_phy2log=previous,
                           load_history=history_before(history, t))
        placements.append(validate_on(output, preset))
    return placements


def _stacked_balance(placements: list, loads: list[np.ndarray], preset: Preset) -> tuple[dict, torch.Tensor]:
    """Balance pooled over windows: the windows' layers are stacked as one long layer axis."""
    phy2log = torch.cat([p[0] for p in placements])
    logcnt = torch.cat([p[2] for p in placements])
    load = torch.from_numpy(np.concatenate(loads))
    balance = placement_balance(load, phy2log, logcnt, preset.num_groups, preset.num_nodes, preset.num_gpus,
                                preset.group_local)
    layer_bal = per_layer_balancedness(gpu_loads(load, phy2log, logcnt, preset.num_gpus))
    return balance.to_dict(), layer_bal.view(len(placements), -1).mean(dim=0)


def score_case(rebalance: RebalanceFn, history: np.ndarray, preset: Preset) -> dict:
    """All figures of one candidate on one history ``[T, L, E]``.

    Keys are those of :class:`evaluator.metrics.Balance` for the t -> t+1 score,
    the same prefixed ``oracle_`` for the same-window score, ``gpu_balancedness_per_layer``
    (``[L]``, t -> t+1, averaged over windows), ``windows_scored`` and ``copies_moved_share``
    (mean share of expert copies transferred between consecutive windows' placements).
    """
    placements = compute_placements(rebalance, history, preset)
    oracle, _ = _stacked_balance(placements, list(history), preset)
    if len(history) > 1:
        predicted, per_layer = _stacked_balance(placements[:-1], list(history[1:]), preset)
    else:
        predicted, per_layer = _stacked_balance(placements, list(history), preset)
    moves = [migration(a[0].numpy(), b[0].numpy(), preset.num_nodes, preset.num_gpus)
             for a, b in zip(placements, placements[1:], strict=False)]
    return (
        predicted
        | {f"oracle_{k}": v for k, v in oracle.items()}
        | {"gpu_balancedness_per_layer": per_layer.tolist(), "windows_scored": max(1, len(history) - 1)}
        # Share of expert copies a rebalance between consecutive windows transfers (0 for one window).
        | {"copies_moved_share": sum(m.copies_share for m in moves) / len(moves) if moves else 0.0}
    )


TimedRebalanceFn = Callable[..., tuple[object, float]]


def time_case(timed_rebalance: TimedRebalanceFn, history: np.ndarray, preset: Preset, repeats: int = 5,
              warmup: int = 1, seed: int = 0) -> dict:
    """Timing of the rebalance call alone, each call on a fresh input (:func:`evaluator.timing.timing_windows`).

    ``timed_rebalance(weight, *shape, previous_phy2log=..., load_history=...)`` returns
    ``(output, seconds)``. Each call is given the placement the call before returned and
    the windows before its own (:func:`history_before`), their experts renamed as this
    call's are, as a deployed balancer would be given them. Every
    output is validated and scored on its own input: ``gpu_balancedness`` is their mean
    (same window), so a policy that answers timed calls with a stale or cheaper placement
    shows it.

    Raises:
        evaluator.validation.InvalidPlacement: when any timed output is not a placement.
    """
    inputs = timing_windows(history, warmup + repeats, np.random.default_rng(seed), preset.num_groups)
    args = preset.rebalance_args()
    samples, balance, previous = [], [], None
    for i, (window, perm) in enumerate(inputs):
        # timing_windows cycles over the windows: this input is window i % T, renamed.
        renamed = np.take_along_axis(history[:i % len(history)], perm[None], axis=2)
        output, seconds = timed_rebalance(torch.from_numpy(window), *args, previous_phy2log=previous,
                                          load_history=history_before(renamed, len(renamed)))
        placement = validate_on(output, preset)
        if i >= warmup:
            samples.append(seconds)
            loads = gpu_loads(torch.from_numpy(window), placement[0], placement[2], preset.num_gpus)
            balance.append(balancedness(loads))
        if i + 1 < len(inputs):  # this call's placement, in the next call's expert names
            original = np.take_along_axis(perm, placement[0].numpy(), axis=1)
            previous = torch.from_numpy(np.take_along_axis(np.argsort(inputs[i + 1][1], axis=1), original, axis=1))
    return TimingStats.from_samples(samples, warmup).to_dict() | {"gpu_balancedness": sum(balance) / len(balance)}
