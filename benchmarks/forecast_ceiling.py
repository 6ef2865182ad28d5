"""How far forecasting can lift t -> t+1 GPU balancedness on the default suite: policies beside ceilings.

Policies (each in a sandbox worker, scored as the harness scores them): ``rounds_swap`` and
``joint_count_search`` with groups free, the latter also with ``FORECAST=1``. Ceilings:
``rounds_swap`` (groups free) placing for what no policy is shown, computed here from the
case's generator: its *expected* next window (the mean popularity of 400 windows drawn from
the case's seed, the families' persistent part; for ``drifting``, a random walk, the current
window's popularity), from the first window on and from the second on (the first has no
history to forecast from); and the next window's *actual* popularity (only the token
sampling noise left). ``--windows`` lengthens every case's history.

    .venv/bin/python benchmarks/forecast_ceiling.py [--windows 4]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from evaluator.metrics import balancedness, gpu_loads
from evaluator.scoring import score_case
from evaluator.suites import get_suite
from evaluator.workloads.base import WORKLOADS
from harness import sandbox
from harness.knobs import bake, declared_knobs

ROOT = Path(__file__).resolve().parent.parent
LIMITS = sandbox.Limits(timeout_s=3600)


def source(name: str, **values: int) -> str:
    """The built-in's source with ``values`` baked into its declared knobs."""
    text = (ROOT / "candidates" / f"{name}.py").read_text()
    return bake(text, [k for k in declared_knobs(text) if k.name in values], values)


def policy_balance(worker: sandbox.Worker, cases: list) -> float:
    return float(np.mean([score_case(worker.rebalance, c.history(), c.get_preset())["gpu_balancedness"]
                          for c in cases]))


def ceiling_balance(worker: sandbox.Worker, cases: list, target: str, first: int) -> float:
    """Mean over cases of t -> t+1 balancedness when window t's placement is made for ``target``."""
    values = []
    for case in cases:
        preset, history = case.get_preset(), case.history()
        popularity = WORKLOADS.create(case.family, dict(case.params)).popularity(
            np.random.default_rng(case.seed), preset, 400)  # its first windows are the case's
        expected = popularity[len(history):].mean(axis=0)
        loads = []
        for t in range(len(history) - 1):
            if t < first:
                weight = history[t].astype(np.float64)
            elif target == "actual":
                weight = popularity[t + 1]
            else:
                weight = popularity[t] if case.family == "drifting" else expected
            (phy2log, _, logcnt), _ = worker.call(np.ascontiguousarray(weight * 1e6), preset.rebalance_args())
            loads.append(gpu_loads(torch.from_numpy(history[t + 1]), torch.from_numpy(phy2log).long(),
                                   torch.from_numpy(logcnt).long(), preset.num_gpus))
        values.append(balancedness(torch.cat(loads)))  # pooled over windows, as score_case pools them
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=4, help="windows a case (the default suite has 4)")
    args = parser.parse_args()
    cases = [dataclasses.replace(c, windows=args.windows) for c in get_suite("default")]
    rows = []
    for label, name, knobs in [("rounds_swap@GROUP_LOCAL=0", "rounds_swap", {"GROUP_LOCAL": 0}),
                               ("joint_count_search@GROUP_LOCAL=0", "joint_count_search", {"GROUP_LOCAL": 0}),
                               ("joint_count_search@GROUP_LOCAL=0,FORECAST=1", "joint_count_search",
                                {"GROUP_LOCAL": 0, "FORECAST": 1})]:
        with sandbox.Worker(LIMITS) as worker:
            worker.load(label, source(name, **knobs))
            rows.append((label, policy_balance(worker, cases)))
        print(f"{rows[-1][0]:60s} {rows[-1][1]:.4f}", flush=True)
    with sandbox.Worker(LIMITS) as worker:
        worker.load("rounds_swap@GROUP_LOCAL=0", source("rounds_swap", GROUP_LOCAL=0))
        for label, target, first in [("ceiling: expected next window, from the second window on", "expected", 1),
                                     ("ceiling: expected next window, from the first window on", "expected", 0),
                                     ("ceiling: the next window's actual popularity", "actual", 0)]:
            print(f"{label:60s} {ceiling_balance(worker, cases, target, first):.4f}", flush=True)


if __name__ == "__main__":
    main()
