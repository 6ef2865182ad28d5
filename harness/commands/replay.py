"""``eplb-harness replay``: replay a trace, rebalancing every K windows; balance and weight transfers per window."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness.commands.common import (
    Command,
    UsageError,
    add_deployment_arg,
    cases_of,
    checked_candidates,
    positive_float,
    positive_int,
    with_knob_variants,
)
from harness.sandbox.outcome import Limits


class ReplayCommand(Command):
    name = "replay"
    help = "replay a trace: rebalance every K windows, score each window"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("candidates", nargs="+", help="candidate .py files or directories of them")
        parser.add_argument("--trace", required=True, help="expert-load trace (see README for formats)")
        parser.add_argument("--preset", action="append", help="model preset whose deployment the trace runs on")
        add_deployment_arg(parser)
        parser.add_argument("--window", type=positive_int, help="records summed per window (format default)")
        parser.add_argument("--every", type=positive_int, default=1, help="rebalance every K windows")
        parser.add_argument(
            "--estimator", choices=["last", "sliding", "ema"], default="last", help="load estimate a rebalance uses"
        )
        parser.add_argument("--span", type=positive_int, default=4, help="windows in the sliding sum")
        parser.add_argument("--alpha", type=positive_float, default=0.5, help="EMA weight of the newest window")
        parser.add_argument("--expert-mb", type=float, default=0.0, help="size of one expert's weights, MiB")
        parser.add_argument(
            "--sweep",
            action="append",
            default=[],
            metavar="KNOB=V1,V2,...",
            help="also replay each candidate declaring KNOB with these values (trade-off plot)",
        )
        parser.add_argument("--out", default="results/replay", help="folder for replay.csv, timeline.png, tradeoff.png")
        parser.add_argument("--timeout", type=positive_float, default=600.0, help="wall-time limit per candidate")
        parser.add_argument("--memory-mb", type=positive_int, default=Limits.memory_mb)

    def run(self, args: argparse.Namespace) -> int:
        import pandas as pd

        from evaluator.replay import ReplayPolicy
        from harness import sandbox
        from harness.plots import plot_migration_tradeoff, plot_timeline
        from harness.runner import replay_task

        case = cases_of(args)[0]
        try:
            policy = ReplayPolicy(
                every=args.every,
                estimator=args.estimator,
                span=args.span,
                alpha=args.alpha,
                expert_bytes=args.expert_mb * 2**20,
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        candidates = with_knob_variants(checked_candidates(args.candidates), args.sweep)
        limits = sandbox.Limits(timeout_s=args.timeout, memory_mb=args.memory_mb)
        frames: dict[int, pd.DataFrame] = {}
        failed = 0
        for index, outcome in sandbox.run_tasks(
            replay_task, [(c, case, policy) for c in candidates], limits, jobs=os.cpu_count() or 1
        ):
            if not outcome.ok:
                print(f"error: {candidates[index].name}: {outcome.failure_kind}: {outcome.reason}", file=sys.stderr)
                failed += 1
                continue
            frames[index] = pd.DataFrame(outcome.value).assign(candidate=candidates[index].name)
        if not frames:
            return 1
        records = pd.concat([frames[i] for i in sorted(frames)], ignore_index=True)  # in the order given
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        records.to_csv(out / "replay.csv", index=False)
        table = records.pivot_table(
            index="window", columns="candidate", values=["gpu_balancedness", "copies_transferred"], sort=False
        )
        table.columns = [
            f"{cand}:{'bal' if metric == 'gpu_balancedness' else 'copies'}" for metric, cand in table.columns
        ]
        table = table.reset_index()
        print(table.to_markdown(index=False, floatfmt=[".4f" if c.endswith(":bal") else ".0f" for c in table.columns]))
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
        print()
        print(totals.to_markdown(index=False, floatfmt=("", ".4f", ".0f", ".0f", ".0f", ".2f", ".4f")))
        totals.to_csv(out / "totals.csv", index=False)
        print(
            f"\nper-window records: {out / 'replay.csv'}; timeline: {plot_timeline(records, out / 'timeline.png')}; "
            f"trade-off: {plot_migration_tradeoff(totals, out / 'tradeoff.png')}"
        )
        return 1 if failed else 0
