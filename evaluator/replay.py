"""Replay a trace window by window: rebalance every K windows from a load estimate, score each window.

A deployed balancer only sees the past: at window ``t`` the current placement was
computed from windows before ``t``. Every ``every`` windows it is recomputed from an
estimate of the load (``last`` window, ``sliding`` sum of the last ``span`` windows,
or ``ema`` with weight ``alpha`` on the newest), and the migration it causes is
counted (:mod:`evaluator.migration`): slots whose expert changed, expert copies that
must be transferred after the best relabelling of GPUs inside each node, and bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from evaluator.estimators import ESTIMATORS, Estimator
from evaluator.metrics import placement_balance
from evaluator.migration import Migration, migration
from evaluator.presets import Preset
from evaluator.scoring import history_before
from evaluator.validation import validate_on


@dataclass(frozen=True)
class ReplayPolicy:
    """When to rebalance (every ``every`` windows) and from which estimate (:mod:`evaluator.estimators`).

    ``span`` and ``alpha`` are offered to the estimator; each takes the options it declares.
    """

    every: int = 1
    estimator: str = "last"
    span: int = 4
    alpha: float = 0.5
    expert_bytes: float = 0.0  # size of one expert's weights, for bytes moved

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError("every must be >= 1")
        _ = self.load_estimator  # an unknown estimator or a bad option is refused here, not mid-replay

    @cached_property
    def load_estimator(self) -> Estimator:
        known = ESTIMATORS.options(self.estimator)  # an unknown name: one-line ValueError
        offered = {"span": self.span, "alpha": self.alpha}
        return ESTIMATORS.create(self.estimator, {k: v for k, v in offered.items() if k in known})


def estimate(windows: np.ndarray, t: int, policy: ReplayPolicy) -> np.ndarray:
    """The load estimate ``[L, E]`` available at the start of window ``t`` (uses windows ``< t``)."""
    return policy.load_estimator.estimate(windows, t)


def replay(rebalance: Callable[..., object], windows: np.ndarray, preset: Preset, policy: ReplayPolicy) -> list[dict]:
    """One record per scored window ``t = 1 .. T-1`` (see module docstring).

    ``rebalance`` is called with ``previous_phy2log``, the placement in force (None at first),
    and ``load_history``, the windows before ``t - 1`` (the estimate's latest).
    """
    records = []
    current = None
    for t in range(1, len(windows)):
        rebalanced = current is None or (t - 1) % policy.every == 0
        moved = Migration(0, 0, 0.0, 0.0)
        if rebalanced:
            weight = torch.from_numpy(np.ascontiguousarray(estimate(windows, t, policy)))
            # The windows seen before the latest one the estimate used (t - 1).
            output = rebalance(weight, *preset.rebalance_args(),
                               previous_phy2log=None if current is None else current[0],
                               load_history=history_before(windows, t - 1))
            placement = validate_on(output, preset)
            if current is not None:
                moved = migration(current[0].numpy(), placement[0].numpy(), preset.num_nodes, preset.num_gpus,
                                  policy.expert_bytes)
            current = placement
        balance = placement_balance(torch.from_numpy(windows[t]), current[0], current[2], preset.num_groups,
                                    preset.num_nodes, preset.num_gpus, preset.group_local)
        records.append({
            "window": t,
            "rebalanced": rebalanced,
            "gpu_balancedness": balance.gpu_balancedness,
            "gpu_balancedness_bound": balance.gpu_balancedness_bound,
            **moved.to_dict(),
        })
    return records
