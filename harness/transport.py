"""The sandbox's transport floor, so that a timed call counts the policy's work alone.

A timed call is clocked by the harness around the trust boundary: writing the input,
waking the worker, copying the answer out and waking the harness again take about half a
millisecond here (more on a busy or virtualised machine), whatever the policy does. The
floor is that round trip measured for the policy at hand: the transport probe
(:mod:`harness.transport_probe`, a policy that answers at once) is timed in a pristine
worker, one no candidate code has run in, on the same inputs, with answers of the same
shapes and dtypes and the same context keywords, right after the candidate's timing. The
candidate's time is its median less the floor's; both are kept.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from evaluator.presets import Preset
from evaluator.scoring import time_case
from evaluator.validation import InvalidPlacement
from harness import sandbox

PROBE_PATH = Path(__file__).with_name("transport_probe.py")
# A call is never counted as faster than this: below it the floor's own spread decides.
RESOLUTION_S = 1e-5


def probe_source(outputs: tuple[torch.Tensor, ...], context: set[str]) -> str:
    """The probe's source, answering with arrays shaped and typed as ``outputs`` and taking ``context``."""
    settings = {
        "SHAPES": tuple(tuple(t.shape) for t in outputs),
        "DTYPES": tuple(str(t.dtype).removeprefix("torch.") for t in outputs),
        "CONTEXT": tuple(sorted(context)),
    }
    source = PROBE_PATH.read_text()
    for name, value in settings.items():
        source = re.sub(rf"^{name} = .*$", f"{name} = {value!r}", source, count=1, flags=re.M)
    return source


def transport_floor(outputs: tuple[torch.Tensor, ...], context: set[str], history: np.ndarray, preset: Preset,
                    repeats: int, warmup: int, seed: int, limits: sandbox.Limits) -> dict:
    """:func:`evaluator.scoring.time_case` of the probe in a fresh worker, on the inputs ``seed`` gives.

    The candidate chose its answers' dtypes; where the probe's placement does not fit one
    (an unsigned log2phy cannot hold its -1 padding), the probe answers in int64 instead,
    so no choice of the candidate's can stop the floor being measured.
    """
    for layout in (outputs, tuple(t.to(torch.int64) for t in outputs)):
        with sandbox.Worker(limits) as worker:
            worker.load("transport-probe", probe_source(layout, context), str(PROBE_PATH))
            try:
                return time_case(worker.timed_rebalance, history, preset, repeats, warmup, seed)
            except InvalidPlacement:
                continue
    raise AssertionError("the transport probe's int64 placement is valid for every preset")


def net_of_transport(stats: dict, floor: dict) -> dict:
    """The candidate's timing ``stats`` with ``median_s`` the call alone; the measured figures kept beside it."""
    return stats | {
        "median_s": max(stats["median_s"] - floor["median_s"], RESOLUTION_S),
        "measured_median_s": stats["median_s"],
        "transport_s": floor["median_s"],
        "transport_iqr_s": floor["iqr_s"],
    }
