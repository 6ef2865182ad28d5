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
    "gap_to_grouped_bound",
    "node_balancedness",
    "oracle_gpu_balancedness",
    "replica_balancedness",
]
# Placement-quality figures beyond balance, averaged over the cases a candidate passed.
_PLACEMENT_COLUMNS = ["group_node_spread", "copies_moved_share", "duplicate_gpu_share"]
RANKABLE = SCORE_COLUMNS + ["adrs_score", "combined_score", "speedup", "runtime_ms"]
# Direction of "better" for each rankable figure.
_ASCENDING = {"runtime_ms": True}


def adrs_score(gpu_balancedness: float, mean_runtime_s: float) -> float:
    """The published EPLB evaluators' score: ``90 x balancedness + 5 x min(0.002 s / t, 2)``, minus
    ``min(20 t, 20)`` when ``t > 0.01 s``; ``t`` is the mean rebalance time in seconds."""
    t = mean_runtime_s
    return 90 * gpu_balancedness + 5 * min(0.002 / t, 2) - (min(20 * t, 20) if t > 0.01 else 0.0)


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


def leaderboard(per_case: pd.DataFrame, rank_by: str = "gpu_balancedness",
                case_keys: list[str] | None = None) -> pd.DataFrame:
    """One row per candidate; only candidates with a result or a recorded failure on every case are ranked.

    ``case_keys`` is the case set (default: every case in ``per_case``). A candidate that
    lacks some of it has no ``rank`` and is listed after the ranked ones; ``coverage``
    says how many of the cases it has. Ranked best first; ties go to the faster one.

    Columns: the averaged scores (failed cases count 0), ``runtime_ms`` (median over
    cases of the median call time), ``speedup`` (geometric mean over cases of
    baseline time / candidate time, same run), ``adrs_score`` (:func:`adrs_score` of the
    mean GPU balancedness and the mean call time), ``combined_score`` (an older
    benchmark's ``(replica balancedness + 0.02 s / mean runtime) / 2``), the placement
    figures (``group_node_spread`` ...) over the passed cases, one ``gpu_balancedness``
    column per workload family (per model for traces), ``failures``, ``cases``, ``coverage``
    and ``timed`` (cases with a runtime; runtime figures are over those).
    """
    if rank_by not in RANKABLE:
        raise ValueError(f"cannot rank by {rank_by!r}; choose one of {', '.join(RANKABLE)}")
    if per_case.empty:
        return pd.DataFrame(columns=["rank", "candidate", *RANKABLE, "failures", "cases", "coverage"])
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
        timed_cases=("runtime_ms", "count"),
    )
    table["speedup"] = groups["speedup"].apply(lambda s: float(np.exp(np.log(s.dropna()).mean())) if s.notna().any()
                                               else np.nan)
    mean_runtime_s = groups["runtime_ms"].mean() / 1e3
    table["adrs_score"] = [adrs_score(b, t) if t > 0 else np.nan
                           for b, t in zip(table["gpu_balancedness"], mean_runtime_s.reindex(table.index), strict=True)]
    table["combined_score"] = (table["replica_balancedness"] + 0.02 / mean_runtime_s) / 2
    # One column per workload family; traced cases, per model preset (a trace is its own workload).
    df["workload"] = df["family"].where(df["family"] != "trace", "trace@" + df["preset"].astype(str))
    families = df.pivot_table(index="candidate_id", columns="workload", values="gpu_balancedness", aggfunc="mean")
    table = table.join(families.add_prefix("gpu_bal:"))
    wanted = set(df["case_key"]) if case_keys is None else set(case_keys)
    covered = df[df["case_key"].isin(wanted)].groupby("candidate_id")["case_key"].nunique()
    table["coverage"] = covered.reindex(table.index).fillna(0).astype(int).map(lambda n: f"{n}/{len(wanted)}")
    table["timed"] = [f"{t}/{n}" for t, n in zip(table.pop("timed_cases"), table["cases"], strict=True)]
    complete = covered.reindex(table.index).fillna(0) == len(wanted)
    ascending = _ASCENDING.get(rank_by, False)
    ranked = table[complete].sort_values([rank_by, "runtime_ms"], ascending=[ascending, True], na_position="last")
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    apart = table[~complete].sort_values([rank_by], ascending=ascending, na_position="last")
    apart.insert(0, "rank", pd.NA)
    out = pd.concat([ranked, apart]) if len(apart) else ranked
    out["rank"] = out["rank"].astype("Int64")
    return out.reset_index()


SUMMARY_COLUMNS = [
    "rank", "candidate", "gpu_balancedness", "gap_to_bound", "group_node_spread", "node_balancedness",
    "oracle_gpu_balancedness", "runtime_ms", "speedup", "adrs_score", "copies_moved_share", "failures", "coverage",
    "timed",
]


def format_table(table: pd.DataFrame, fmt: str = "md", columns: list[str] | None = None) -> str:
    """Render ``table`` as ``md``, ``csv`` or ``html``.

    In ``md``, candidates without a rank (an incomplete case set) follow in a table of their own.
    """
    if columns is not None:
        table = table[[c for c in columns if c in table]]
    if fmt == "csv":
        return table.to_csv(index=False)
    if fmt == "html":
        return table.to_html(index=False, float_format=lambda x: f"{x:.4f}", na_rep="")
    if fmt != "md":
        raise ValueError(f"unknown format {fmt!r}; choose md, csv or html")
    if "rank" not in table or table["rank"].notna().all():
        return table.to_markdown(index=False, floatfmt=".4f")
    ranked, apart = table[table["rank"].notna()], table[table["rank"].isna()].drop(columns="rank")
    note = "Not ranked: results on only part of the case set (coverage = cases with a result or a recorded failure)"
    return "\n\n".join([ranked.to_markdown(index=False, floatfmt=".4f"), note,
                        apart.to_markdown(index=False, floatfmt=".4f")])
