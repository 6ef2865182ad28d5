"""``eplb-harness compare``: paired per-case comparison with a reference over several seeds."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands.common import (
    Command,
    UsageError,
    add_common,
    cases_of,
    checked_candidates,
    seed_list,
)


class CompareCommand(Command):
    name = "compare"
    help = "paired per-case comparison with a reference over several seeds"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("candidate", help="candidate .py file")
        parser.add_argument("--against", help="reference candidate .py file (default: the baseline)")
        add_common(parser, "suite", "preset", "deployment")
        parser.add_argument(
            "--seeds", type=seed_list, default=list(range(5)), help="FIRST-LAST or a comma list (default 0-4)"
        )
        parser.add_argument("--confidence", type=float, default=0.95, help="level of the t-intervals (default 0.95)")
        add_common(parser, "out", "db", "jobs", "cluster", "timeout", "memory_mb", "quiet", out="results/compare")

    def run(self, args: argparse.Namespace) -> int:
        import pandas as pd

        from harness import sandbox
        from harness.comparison import COMPARED, LOCALITY, compare_table, paired_differences, reseeded, verdict_counts
        from harness.executors import open_executor
        from harness.leaderboard import case_results
        from harness.runner import RunConfig, evaluate
        from harness.store import Store

        if not 0 < args.confidence < 1:
            raise UsageError(f"--confidence must be between 0 and 1, got {args.confidence}")
        cases = reseeded(cases_of(args), args.seeds)
        candidate = checked_candidates([args.candidate])
        reference = checked_candidates([args.against]) if args.against else []
        if len(candidate) != 1 or len(reference) > 1:
            raise UsageError("compare takes one candidate file and at most one --against file")
        store = Store(args.db)
        limits = sandbox.Limits(timeout_s=args.timeout, memory_mb=args.memory_mb)
        with open_executor(args.cluster) as executor:
            config = RunConfig(limits=limits, jobs=args.jobs, quiet=args.quiet, time_runs=False, executor=executor)
            report = evaluate(store, candidate + reference, cases, config, command="compare", suite=args.suite)
        reference_id = reference[0].id if reference else report.baseline_id
        per_case = case_results(store, [c.key for c in cases], report.candidate_ids, report.baseline_id)
        differences = paired_differences(per_case, cases, candidate[0].id, reference_id)
        table = compare_table(differences, args.confidence)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        differences.to_csv(out / "differences.csv", index=False)
        table.to_csv(out / "compare.csv", index=False)
        shown = table[["case", "seeds", "failed"]].copy()
        shown["group spread (ref)"] = [
            f"{a:.2f} ({b:.2f})" if pd.notna(a) else "no groups"
            for a, b in zip(table[LOCALITY], table[f"reference_{LOCALITY}"], strict=True)
        ]
        for figure in COMPARED.values():
            shown[f"{figure} diff"] = table[f"{figure}_diff"].map("{:+.5f}".format)
            shown[f"{figure} {args.confidence:.0%} CI"] = [
                f"[{lo:+.5f}, {hi:+.5f}]"
                for lo, hi in zip(table[f"{figure}_low"], table[f"{figure}_high"], strict=True)
            ]
            shown[f"{figure} verdict"] = table[f"{figure}_verdict"]
        print(shown.to_markdown(index=False, disable_numparse=True))
        against = reference[0].name if reference else "the baseline"
        for figure in COMPARED.values():
            counts = ", ".join(f"{n} {verdict}" for verdict, n in sorted(verdict_counts(table, figure).items()))
            print(
                f"{candidate[0].name} vs {against}, {figure} balancedness: {counts} "
                f"({len(args.seeds)} seeds, {args.confidence:.0%} t-intervals)"
            )
        print(f"CSV: {out / 'compare.csv'}")
        return 0
