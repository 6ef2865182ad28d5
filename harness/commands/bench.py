"""``eplb-harness bench``: time the rebalance call per preset against the baseline in the same run."""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

from evaluator.presets import PRESETS
from harness.commands.common import (
    Command,
    add_deployment_arg,
    add_store_arg,
    checked_candidates,
    positive_int,
)


class BenchCommand(Command):
    name = "bench"
    help = "runtime per preset (ratio to the baseline, same run) and suite balance"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("candidates", nargs="*", default=["candidates"], help="candidate files or directories")
        parser.add_argument("--presets", nargs="+", default=list(PRESETS), help="presets to time on")
        add_deployment_arg(parser)
        parser.add_argument("--repeats", type=positive_int, default=20, help="timed calls per preset (after warm-up)")
        parser.add_argument("--suite", default="default", help="suite for the balance columns")
        parser.add_argument("--out", default="results/bench", help="folder for bench.csv")
        add_store_arg(parser)
        parser.add_argument("--quiet", action="store_true")

    def run(self, args: argparse.Namespace) -> int:
        import pandas as pd

        from evaluator.presets import get_preset
        from evaluator.suites import Case, get_suite
        from harness import sandbox
        from harness.figures import adrs_score
        from harness.leaderboard import case_results, leaderboard
        from harness.runner import RunConfig, evaluate, time_task
        from harness.store import Store

        timed_cases = [Case("zipf", get_preset(p).name, 0, windows=1) for p in args.presets]
        cases = get_suite(args.suite)
        if args.deployment:  # the balance columns too, on the suite's cases of these presets
            # A deployment that does not fit raises DeploymentError: one line and exit 2 (harness.cli).
            cases = [c.with_deployment(args.deployment) for c in cases if c.preset in args.presets]
            timed_cases = [c.with_deployment(args.deployment) for c in timed_cases]
        candidates = checked_candidates(args.candidates)
        store = Store(args.db)
        report = evaluate(
            store,
            candidates,
            cases,
            RunConfig(jobs=os.cpu_count() or 1, quiet=args.quiet, time_runs=False),
            command="bench",
            suite=args.suite,
        )
        balance = leaderboard(case_results(store, [c.key for c in cases], report.candidate_ids, report.baseline_id))
        everyone = [store.get_candidate(cid) for cid in report.candidate_ids]  # the baseline first
        # Serial, one worker at a time; the baseline and the candidates alternate on each preset.
        seed = secrets.randbits(32)  # the same unguessable timing inputs for every candidate
        tasks = [(c, case, args.repeats, 3, seed) for case in timed_cases for c in everyone]
        rows = []
        for index, outcome in sandbox.run_tasks(time_task, tasks, sandbox.Limits(), jobs=1):
            cand, case, *_ = tasks[index]
            stats = outcome.value or {}
            rows.append(
                {
                    "candidate": cand.name,
                    "candidate_id": cand.id,
                    "preset": case.where[1:],
                    "median_ms": stats.get("median_s", float("nan")) * 1e3,
                    "iqr_ms": stats.get("iqr_s", float("nan")) * 1e3,
                    # balance of the timed answers themselves: a candidate cannot be fast by answering worse
                    "timed_gpu_balancedness": stats.get("gpu_balancedness", float("nan")),
                    "failure": outcome.failure_kind,
                }
            )
        table = pd.DataFrame(rows)
        base = table[table["candidate_id"] == report.baseline_id].set_index("preset")["median_ms"]
        table["speedup_vs_baseline"] = table["preset"].map(base) / table["median_ms"]
        table = table.merge(
            balance[["candidate_id", "gpu_balancedness", "gap_to_bound", "group_node_spread", "failures"]],
            on="candidate_id",
            how="left",
        ).drop(columns="candidate_id")
        # The published score of the suite's balance at this preset's call time.
        table["adrs_score"] = [
            adrs_score(b, t / 1e3) for b, t in zip(table["gpu_balancedness"], table["median_ms"], strict=True)
        ]
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "bench.csv", index=False)
        print(table.to_markdown(index=False, floatfmt=".4f"))
        print(
            f"\n{len(args.presets)} presets x {len(everyone)} candidates, {args.repeats} timed calls each after 3 "
            f"warm-up; balance columns: suite {args.suite!r}. CSV: {out / 'bench.csv'}"
        )
        return 0
