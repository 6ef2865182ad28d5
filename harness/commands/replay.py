"""``eplb-harness replay``: replay a trace, rebalancing every K windows; balance and weight transfers per window."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.commands.common import (
    Command,
    UsageError,
    add_candidates_arg,
    add_common,
    candidate_specs,
    cases_of,
    checked_candidates,
    positive_float,
    positive_int,
    with_knob_variants,
)


class ReplayCommand(Command):
    name = "replay"
    help = "replay a trace: rebalance every K windows, score each window"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_candidates_arg(parser)
        parser.add_argument("--trace", required=True, help="expert-load trace (formats: docs/traces.md)")
        add_common(parser, "preset", "deployment")
        parser.add_argument("--window", type=positive_int, help="records summed per window (format default)")
        parser.add_argument("--every", type=positive_int, default=1, help="rebalance every K windows")
        from evaluator.estimators import ESTIMATORS

        parser.add_argument("--estimator", choices=ESTIMATORS.names(), default="last",
                            help="load estimate a rebalance uses (evaluator/estimators.py)")
        parser.add_argument("--span", type=positive_int, default=4, help="windows in the sliding sum")
        parser.add_argument("--alpha", type=positive_float, default=0.5, help="EMA weight of the newest window")
        parser.add_argument("--expert-mb", type=float, default=0.0, help="size of one expert's weights, MiB")
        add_common(parser, "sweep")  # its variants are the points of tradeoff.png
        # A replay is one case: its time limit covers the whole trace, hence the longer default.
        add_common(parser, "out", "db", "jobs", "cluster", "timeout", "memory_mb", "quiet", out="results/replay",
                   timeout=600.0)

    def run(self, args: argparse.Namespace) -> int:
        from dataclasses import asdict

        import pandas as pd

        from evaluator.replay import ReplayPolicy
        from harness import sandbox
        from harness.executors import open_executor
        from harness.plots import plot_migration_tradeoff, plot_timeline
        from harness.replay_summary import replay_totals, window_table
        from harness.runner import Progress, replay_task
        from harness.store import Store

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
        candidates = with_knob_variants(checked_candidates(candidate_specs(args)), args.sweep)
        limits = sandbox.Limits(timeout_s=args.timeout, memory_mb=args.memory_mb)
        store = Store(args.db)
        for candidate in candidates:
            store.add_candidate(candidate)
        run_id = store.start_run("replay", None)
        frames: dict[int, pd.DataFrame] = {}
        failed = 0
        bar = Progress(len(candidates), "replay", args.quiet)
        with open_executor(args.cluster) as executor:
            for index, outcome in executor.map(replay_task, [(c, case, policy) for c in candidates], limits, args.jobs):
                bar.update(not outcome.ok)
                if not outcome.ok:
                    print(f"error: {candidates[index].name}: {outcome.failure_kind}: {outcome.reason}",
                          file=sys.stderr)
                    failed += 1
                    continue
                store.add_replay(run_id, candidates[index].id, case.name, asdict(policy), outcome.value)
                frames[index] = pd.DataFrame(outcome.value).assign(candidate=candidates[index].name)
        bar.close()
        store.end_run(run_id)
        if not frames:
            return 1
        records = pd.concat([frames[i] for i in sorted(frames)], ignore_index=True)  # in the order given
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        records.to_csv(out / "replay.csv", index=False)
        table = window_table(records)
        print(table.to_markdown(index=False, floatfmt=[".4f" if c.endswith(":bal") else ".0f" for c in table.columns]))
        totals = replay_totals(records)
        print()
        print(totals.to_markdown(index=False, floatfmt=("", ".4f", ".0f", ".0f", ".0f", ".2f", ".4f")))
        totals.to_csv(out / "totals.csv", index=False)
        print(
            f"\nper-window records: {out / 'replay.csv'}; timeline: {plot_timeline(records, out / 'timeline.png')}; "
            f"trade-off: {plot_migration_tradeoff(totals, out / 'tradeoff.png')}"
        )
        return 1 if failed else 0
