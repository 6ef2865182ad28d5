"""Tables from the store: per-case results and the one-row-per-candidate leaderboard."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.candidate import baseline
from harness.figures import FIGURES
from harness.store import Store


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
    if baseline_id is None:
        baseline_id = baseline().id
    timings = store.timings_frame(sorted(set(evals["candidate_id"]) | {baseline_id}))  # only those it pairs
    timings = timings[timings["median_s"].notna()]
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


def _pooled(values: pd.Series, pooling: str) -> float:
    values = values.dropna()
    if values.empty:
        return np.nan
    if pooling == "geomean":
        return float(np.exp(np.log(values.astype(float)).mean()))
    if pooling == "min":
        return float(values.min())
    return float(values.median() if pooling == "median" else values.mean())


def leaderboard(per_case: pd.DataFrame, rank_by: str = "gpu_balancedness",
                case_keys: list[str] | None = None) -> pd.DataFrame:
    """One row per candidate; only candidates with a result or a recorded failure on every case are ranked.

    ``case_keys`` is the case set (default: every case in ``per_case``). A candidate that
    lacks some of it has no ``rank`` and is listed after the ranked ones; ``coverage``
    says how many of the cases it has. Ranked best first by ``rank_by`` (its declared
    direction); ties go to the faster one.

    Columns: every figure of :data:`harness.figures.FIGURES`, pooled over the candidate's
    cases as declared (a failed case counts 0 or is left out, as declared; runtime figures
    over the timed cases), one ``gpu_balancedness`` column per workload family (per model for
    traces), ``failures``, ``cases``, ``coverage`` and ``timed`` (cases with a runtime).
    """
    if rank_by not in FIGURES:
        raise ValueError(f"cannot rank by {rank_by!r}; choose one of {', '.join(FIGURES)}")
    if per_case.empty:
        return pd.DataFrame(columns=["rank", "candidate", *FIGURES, "failures", "cases", "coverage", "timed"])
    df = per_case.copy()
    for figure in FIGURES.values():
        if figure.pooled == "derived":
            continue
        values = df[figure.name] if figure.name in df else pd.Series(np.nan, index=df.index)
        df[figure.name] = values.where(df["ok"], 0.0 if figure.failed_case == "zero" else np.nan)
    rows = []
    for candidate_id, part in df.groupby("candidate_id", sort=False):
        row = {"candidate_id": candidate_id, "candidate": part["candidate"].iloc[0], "origin": part["origin"].iloc[0]}
        row |= {f.name: _pooled(part[f.name], f.pooled) for f in FIGURES.values() if f.pooled != "derived"}
        pooled = row | {"mean_runtime_s": float(part["runtime_ms"].mean()) / 1e3}
        row |= {f.name: f.derive(pooled) for f in FIGURES.values() if f.pooled == "derived"}
        row |= {"failures": int((~part["ok"]).sum()), "cases": len(part),
                "timed": f"{int(part['runtime_ms'].notna().sum())}/{len(part)}"}
        rows.append(row)
    table = pd.DataFrame(rows).set_index("candidate_id")
    # One column per workload family; traced cases, per model preset (a trace is its own workload).
    df["workload"] = df["family"].where(df["family"] != "trace", "trace@" + df["preset"].astype(str))
    families = df.pivot_table(index="candidate_id", columns="workload", values="gpu_balancedness", aggfunc="mean")
    table = table.join(families.add_prefix("gpu_bal:"))
    wanted = set(df["case_key"]) if case_keys is None else set(case_keys)
    covered = df[df["case_key"].isin(wanted)].groupby("candidate_id")["case_key"].nunique()
    covered = covered.reindex(table.index).fillna(0).astype(int)
    table["coverage"] = covered.map(lambda n: f"{n}/{len(wanted)}")
    complete = covered == len(wanted)
    ascending = not FIGURES[rank_by].higher_is_better
    ranked = table[complete].sort_values([rank_by, "runtime_ms"], ascending=[ascending, True], na_position="last")
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    apart = table[~complete].sort_values([rank_by], ascending=ascending, na_position="last")
    apart.insert(0, "rank", pd.NA)
    out = pd.concat([ranked, apart]) if len(apart) else ranked
    out["rank"] = out["rank"].astype("Int64")
    return out.reset_index()


SUMMARY_COLUMNS = ["rank", "candidate", *(f.name for f in FIGURES.values() if f.summary), "failures", "coverage",
                   "timed"]


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
    def markdown(part: pd.DataFrame) -> str:
        formats = [FIGURES[c].fmt if c in FIGURES else ".4f" for c in part.columns]
        return part.to_markdown(index=False, floatfmt=formats)

    if "rank" not in table or table["rank"].notna().all():
        return markdown(table)
    ranked, apart = table[table["rank"].notna()], table[table["rank"].isna()].drop(columns="rank")
    note = "Not ranked: results on only part of the case set (coverage = cases with a result or a recorded failure)"
    return "\n\n".join([markdown(ranked), note, markdown(apart)])
