"""``eplb-harness leaderboard``: rank every stored candidate on a suite, optionally with plots."""

from __future__ import annotations

import argparse
import sys

from harness.commands.common import (
    Command,
    UsageError,
    add_common,
)
from harness.figures import FIGURES


class LeaderboardCommand(Command):
    name = "leaderboard"
    help = "rank every stored candidate on a suite"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_common(parser, "db", "suite")
        parser.add_argument("--format", choices=["md", "csv", "html"], default="md", help="table format (default md)")
        parser.add_argument("--rank-by", choices=list(FIGURES), default="gpu_balancedness", metavar="FIGURE",
                            help=f"declared figure to rank by (harness/figures.py): {', '.join(FIGURES)}")
        parser.add_argument("--plots", metavar="DIR", help="also write pareto.png, gap_heatmap.png, ranking.png here")
        parser.add_argument("--all-columns", action="store_true", help="show per-family and compatibility columns")

    def run(self, args: argparse.Namespace) -> int:
        from evaluator.suites import get_suite
        from harness.leaderboard import SUMMARY_COLUMNS, case_results, format_table, leaderboard
        from harness.store import Store

        cases = get_suite(args.suite)
        store = Store(args.db, create=False)
        per_case = case_results(store, [c.key for c in cases])
        if per_case.empty:
            raise UsageError(f"the store {args.db} has no evaluation on suite {args.suite!r}")
        table = leaderboard(per_case, rank_by=args.rank_by, case_keys=[c.key for c in cases])
        columns = None if args.all_columns else SUMMARY_COLUMNS + [c for c in table.columns if c.startswith("gpu_bal:")]
        print(format_table(table, args.format, columns))
        if args.plots:
            from harness.plots import write_plots

            paths = write_plots(per_case, table, args.plots)
            print("plots: " + ", ".join(str(p) for p in paths), file=sys.stderr)
        return 0
