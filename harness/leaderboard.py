"""Tables from the store: per-case results and the one-row-per-candidate leaderboard."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.candidate import baseline
from harness.store import Store

# Figures averaged per candidate; a failed case counts as 0 ("invalid output scores nothing").
SCORE_COLUMNS = [
    "gpu_balancedness",
    "gap_to_bound",
    "node_balancedness",
    "oracle_gpu_balancedness",
    "replica_balancedness",
]
# Placement-quality figures beyond balance, averaged over the cases a candidate passed.
_PLACEMENT_COLUMNS = ["copies_moved_share", "duplicate_gpu_share"]
RANKABLE = SCORE_COLUMNS + ["combined_score", "speedup", "runtime_ms"]
# Direction of "better" for each rankable figure.
_ASCENDING = {"runtime_ms": True}


def case_results(store: Store, case_keys: list[str] | None = None, candidate_ids: list[str] | None = None,
                 baseline_id: str | None = None) -> pd.DataFrame:
    """One row per (candidate, case): every metric, plus runtime and speed-up vs the baseline.

    Runtime comes from the latest run that timed both the candidate and the
    baseline on that case, and the speed-up is taken within that run.
    """
    evals = store.evaluations_frame(candidate_ids, case_keys)
    if evals.empty:
        return evals
    evals["ok"] = evals["failure_kind"].isna()
    timings = store.timings_frame()
    timings = timings[timings["median_s"].notna()]
    if baseline_id is None:
        baseline_id = baseline().id
    base = timings[timings["candidate_id"] == baseline_id][["run_id", "case_key", "median_s"]]
    paired = timings.merge(base, on=["run_id", "case_key"], suffixes=("", "_baseline"))
    paired = paired.sort_values("run_id").groupby(["candidate_id", "case_key"], as_index=False).last()
    paired["speedup"] = paired["median_s_baseline"] / paired["median_s"]
    paired["runtime_ms"] = paired["median_s"] * 1e3
    out = evals.merge(
        paired[["candidate_id", "case_key", "runtime_ms", "speedup", "iqr_s", "run_id"]].rename(
            columns={"run_id": "timing_run_id"}
        ),
        on=["candidate_id", "case_key"],
        how="left",
    )
    return out


def leaderboard(per_case: pd.DataFrame, rank_by: str = "gpu_balancedness") -> pd.DataFrame:
    """One row per candidate, best first; ties on the ranking figure go to the faster one.

    Columns: the averaged scores (failed cases count 0), ``runtime_ms`` (median over
    cases of the median call time), ``speedup`` (geometric mean over cases of
    baseline time / candidate time, same run), ``combined_score`` (the published
    benchmark's ``(replica balancedness + 0.02 s / mean runtime) / 2``), one
    ``gpu_balancedness`` column per workload family, ``failures`` and ``cases``.
    """
    if rank_by not in RANKABLE:
        raise ValueError(f"cannot rank by {rank_by!r}; choose one of {', '.join(RANKABLE)}")
    if per_case.empty:
        return pd.DataFrame(columns=["candidate", *RANKABLE, "failures", "cases"])
    df = per_case.copy()
    for col in SCORE_COLUMNS:
        df[col] = df[col].where(df["ok"], 0.0) if col in df else 0.0
    groups = df.groupby("candidate_id", sort=False)
    table = groups.agg(
        candidate=("candidate", "first"),
        origin=("origin", "first"),
        **{col: (col, "mean") for col in SCORE_COLUMNS},
        runtime_ms=("runtime_ms", "median"),
        **{col: (col, "mean") for col in _PLACEMENT_COLUMNS if col in df},
        failures=("ok", lambda s: int((~s).sum())),
        cases=("ok", "size"),
    )
    table["speedup"] = groups["speedup"].apply(lambda s: float(np.exp(np.log(s.dropna()).mean())) if s.notna().any()
                                               else np.nan)
    mean_runtime_s = groups["runtime_ms"].mean() / 1e3
    table["combined_score"] = (table["replica_balancedness"] + 0.02 / mean_runtime_s) / 2
    families = df.pivot_table(index="candidate_id", columns="family", values="gpu_balancedness", aggfunc="mean")
    table = table.join(families.add_prefix("gpu_bal:"))
    ascending = _ASCENDING.get(rank_by, False)
    table = table.sort_values([rank_by, "runtime_ms"], ascending=[ascending, True], na_position="last")
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index()


SUMMARY_COLUMNS = [
    "rank", "candidate", "gpu_balancedness", "gap_to_bound", "node_balancedness", "oracle_gpu_balancedness",
    "runtime_ms", "speedup", "copies_moved_share", "failures",
]


def format_table(table: pd.DataFrame, fmt: str = "md", columns: list[str] | None = None) -> str:
    """Render ``table`` as ``md``, ``csv`` or ``html``."""
    if columns is not None:
        table = table[[c for c in columns if c in table]]
    if fmt == "csv":
        return table.to_csv(index=False)
    if fmt == "html":
        return table.to_html(index=False, float_format=lambda x: f"{x:.4f}")
    if fmt == "md":
        return table.to_markdown(index=False, floatfmt=".4f")
    raise ValueError(f"unknown format {fmt!r}; choose md, csv or html")
