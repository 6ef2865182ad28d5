"""Paired comparison of a candidate with a reference, case by case, over several seeds of each case.

A case's t -> t+1 score carries the next window's noise. Two placements with the
same GPU loads on the window they were computed from (the baseline and the same
greedy with ties broken in another order) differ on the next window by up to a few
tenths of a percent per case. So "worse on this case" is only a finding when it holds
across seeds: each case is re-generated with every seed, both candidates are scored
on the same histories, and the per-seed differences give a mean and a t-interval.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy import stats

from evaluator.suites import Case
from harness.figures import FIGURES

# The figures declared to be tested over seeds (the t -> t+1 and same-window balance), by their label.
COMPARED = {f.name: f.compared_as for f in FIGURES.values() if f.compared_as}
# Shown for each side, not differenced: what the balance costs in locality.
LOCALITY = "group_node_spread"


def reseeded(cases: list[Case], seeds: list[int]) -> list[Case]:
    """Every case of ``cases`` once per seed (traced cases have no seed and are kept as they are)."""
    out: list[Case] = []
    for case in cases:
        if case.trace is not None:
            out.append(case)
        else:
            out.extend(dataclasses.replace(case, seed=s) for s in seeds)
    return list({c.key: c for c in out}.values())


def case_group(case: Case) -> str:
    """The case's name without its seed: what the seeds are repetitions of."""
    return case.name.rsplit("#s", 1)[0] if case.trace is None else case.name


def paired_differences(per_case: pd.DataFrame, cases: list[Case], candidate_id: str,
                       reference_id: str) -> pd.DataFrame:
    """One row per case: ``group``, ``seed``, candidate minus reference for each compared figure,
    and each side's ``group_node_spread`` (``reference_group_node_spread``).

    ``per_case`` is :func:`harness.leaderboard.case_results` output. A case either
    side failed on has NaN differences and ``failed`` True.
    """
    figures = list(COMPARED) + [LOCALITY]
    ok = per_case[per_case["failure_kind"].isna()].set_index(["candidate_id", "case_key"])
    rows = []
    for case in cases:
        row = {"group": case_group(case), "seed": case.seed, "case_key": case.key}
        try:
            cand = ok.loc[(candidate_id, case.key), figures]
            ref = ok.loc[(reference_id, case.key), figures]
        except KeyError:
            rows.append(row | {COMPARED[f]: np.nan for f in COMPARED} | {"failed": True})
            continue
        rows.append(row | {COMPARED[f]: float(cand[f] - ref[f]) for f in COMPARED} | {"failed": False}
                    | {LOCALITY: _number(cand[LOCALITY]), f"reference_{LOCALITY}": _number(ref[LOCALITY])})
    return pd.DataFrame(rows)


def _number(value: object) -> float:
    """A stored figure as a float; NaN where it does not apply (None, e.g. no expert groups)."""
    return float(value) if pd.notna(value) else np.nan


def _verdict(diffs: np.ndarray, low: float, high: float) -> str:
    if len(diffs) == 0:
        return "no data"
    if np.all(diffs == 0):
        return "equal"
    if len(diffs) == 1:
        return "one seed"
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "indistinguishable"


def compare_table(differences: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per case group: seeds compared, each side's mean ``group_node_spread``, and for each figure the mean
    difference, its t-interval and a verdict.

    The verdict is ``better`` / ``worse`` when the interval excludes 0, ``equal`` when
    every seed gives exactly the same figure, else ``indistinguishable``. One seed gives
    no interval (verdict ``one seed`` unless ``equal``); a case every seed failed, ``no data``.
    """
    rows = []
    for group, part in differences.groupby("group", sort=False):
        good = part[~part["failed"]]
        row = {"case": group, "seeds": len(good), "failed": int(part["failed"].sum())}
        for column in (LOCALITY, f"reference_{LOCALITY}"):
            row[column] = float(good[column].mean()) if column in good and len(good) else np.nan
        for figure in COMPARED.values():
            d = good[figure].to_numpy()
            mean = float(d.mean()) if len(d) else np.nan
            if len(d) > 1:
                half = stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
            else:
                half = np.nan
            low, high = mean - half, mean + half
            row |= {f"{figure}_diff": mean, f"{figure}_low": low, f"{figure}_high": high,
                    f"{figure}_verdict": _verdict(d, low, high)}
        rows.append(row)
    return pd.DataFrame(rows)


def verdict_counts(table: pd.DataFrame, figure: str = "next_window") -> dict[str, int]:
    """How many case groups got each verdict on ``figure``."""
    return {str(k): int(v) for k, v in table[f"{figure}_verdict"].value_counts().items()}
