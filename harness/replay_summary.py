"""Tables of a replay (:func:`evaluator.replay.replay` records of many candidates): per window and per candidate."""

from __future__ import annotations

import pandas as pd


def window_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per window; per candidate its GPU balancedness (``NAME:bal``) and copies moved (``NAME:copies``)."""
    table = records.pivot_table(
        index="window", columns="candidate", values=["gpu_balancedness", "copies_transferred"], sort=False
    )
    table.columns = [f"{cand}:{'bal' if metric == 'gpu_balancedness' else 'copies'}" for metric, cand in table.columns]
    return table.reset_index()


def replay_totals(records: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate: mean balance, rebalances, slots changed, copies and GiB moved, and the share
    of copies a rebalance after the first one moves."""
    totals = (
        records.groupby("candidate", sort=False)
        .agg(
            mean_gpu_balancedness=("gpu_balancedness", "mean"),
            rebalances=("rebalanced", "sum"),
            slots_changed=("slots_changed", "sum"),
            copies_transferred=("copies_transferred", "sum"),
            gib_moved=("bytes_moved", "sum"),
        )
        .reset_index()
    )
    totals["gib_moved"] /= 2**30
    # A rebalance after the first one is where weights move; the first only places.
    later = (
        records[records["rebalanced"]]
        .groupby("candidate", sort=False)
        .apply(lambda r: r["copies_share"].iloc[1:].mean() if len(r) > 1 else 0.0, include_groups=False)
    )
    totals["copies_share_per_rebalance"] = totals["candidate"].map(later).fillna(0.0)
    return totals
