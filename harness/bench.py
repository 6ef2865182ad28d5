"""The bench table: each candidate's call time per preset, as a ratio to the baseline timed in the same run,
beside its balance on a suite.

Both halves go through the runner (:func:`harness.runner.evaluate`): balance is the suite's
stored t -> t+1 figures, time is the runner's timing phase (serial, fresh secret inputs,
every timed answer scored and refused if worse than the candidate's own scored answers)
on one two-window ``zipf`` case per preset.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from evaluator.presets import get_preset
from evaluator.suites import Case
from harness.candidate import Candidate
from harness.figures import adrs_score
from harness.leaderboard import case_results, leaderboard
from harness.runner import RunConfig, evaluate
from harness.store import Store

BALANCE_COLUMNS = ["gpu_balancedness", "gap_to_bound", "gap_to_grouped_bound", "oracle_gpu_balancedness",
                   "oracle_gap_to_bound", "group_node_spread", "duplicate_gpu_share", "failures"]


def timed_cases(presets: list[str], deployment: str | None = None) -> list[Case]:
    """One case per preset for the timing half: its seed-0 ``zipf`` history of two windows."""
    cases = [Case("zipf", get_preset(p).name, 0, windows=2) for p in presets]
    return [c.with_deployment(deployment) for c in cases] if deployment else cases


def bench_table(store: Store, candidates: list[Candidate], balance_cases: list[Case], timing_cases: list[Case],
                config: RunConfig, suite: str | None = None) -> pd.DataFrame:
    """One row per (candidate, timed case): ``median_ms`` (the call alone), ``iqr_ms``, ``measured_ms`` and
    ``transport_ms`` (the sandbox's round trip it is net of), ``speedup_vs_baseline``, the balance of the timed
    answers, the suite's balance columns and ``adrs_score``. The baseline's rows come first."""
    scored = evaluate(store, candidates, balance_cases, replace(config, time_runs=False), command="bench",
                      suite=suite)
    balance = leaderboard(case_results(store, [c.key for c in balance_cases], scored.candidate_ids,
                                       scored.baseline_id))
    timed = evaluate(store, candidates, timing_cases, replace(config, time_runs=True), command="bench")
    timings = store.timings_frame(timed.candidate_ids)
    timings = timings[timings["run_id"] == timed.run_id]
    where = {c.key: c.where[1:] for c in timing_cases}
    names = {cid: store.get_candidate(cid).name for cid in timed.candidate_ids}
    table = pd.DataFrame({
        "candidate": timings["candidate_id"].map(names),
        "candidate_id": timings["candidate_id"],
        "preset": timings["case_key"].map(where),
        "median_ms": timings["median_s"] * 1e3,
        "iqr_ms": timings["iqr_s"] * 1e3,
        # what the harness's clock saw around the sandbox, and that round trip alone (harness.transport)
        "measured_ms": timings["measured_median_s"] * 1e3,
        "transport_ms": timings["transport_s"] * 1e3,
        # balance of the timed answers themselves: a candidate cannot be fast by answering worse
        "timed_gpu_balancedness": timings["timed_gpu_balancedness"],
        "failure": timings["timing_failure"],
    })
    # Preset by preset in the order given, the baseline first (as the runner lists candidates).
    case_rank = timings["case_key"].map({c.key: i for i, c in enumerate(timing_cases)})
    candidate_rank = timings["candidate_id"].map({cid: i for i, cid in enumerate(timed.candidate_ids)})
    table = table.iloc[(case_rank * len(timed.candidate_ids) + candidate_rank).to_numpy().argsort()]
    table = table.reset_index(drop=True)
    base = table[table["candidate_id"] == timed.baseline_id].set_index("preset")["median_ms"]
    table["speedup_vs_baseline"] = table["preset"].map(base) / table["median_ms"]
    table = table.merge(balance[["candidate_id", *BALANCE_COLUMNS]], on="candidate_id", how="left")
    # The published score of the suite's balance at this preset's call time.
    table["adrs_score"] = [adrs_score(b, t / 1e3) for b, t in zip(table["gpu_balancedness"], table["median_ms"],
                                                                     strict=True)]
    return table.drop(columns="candidate_id")
