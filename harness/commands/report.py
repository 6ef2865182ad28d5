"""``eplb-harness report``: a static site of the store's results (leaderboards, plots, runs, candidates)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands.common import Command, UsageError, add_common
from harness.commands.tune import DEFAULT_STORAGE


class ReportCommand(Command):
    name = "report"
    help = "write a static HTML report of the store: leaderboards, Pareto front, heatmap, runs, candidates"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_common(parser, "db")
        parser.add_argument("--suite", help="only this suite's board (default: every suite with results)")
        add_common(parser, "deployment")
        parser.add_argument("--storage", help="Optuna storage of tune studies to include "
                                              f"(default {DEFAULT_STORAGE} when that file exists)")
        parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the site into (replaced)")

    def run(self, args: argparse.Namespace) -> int:
        from harness.report import build_report
        from harness.store import Store, shown_url

        store = Store(args.db, create=False)
        storage = args.storage
        if storage is None and Path(DEFAULT_STORAGE.removeprefix("sqlite:///")).exists():
            storage = DEFAULT_STORAGE
        if storage:
            _check_storage(storage)
        # An unknown suite or a deployment that fits no case: one line, exit 2, before anything is written.
        index = build_report(store, args.out, args.suite, args.deployment, storage, store_url=shown_url(args.db))
        print(f"report: {index}")
        return 0


def _check_storage(storage: str) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage.startswith("sqlite:///") and not Path(storage.removeprefix("sqlite:///")).exists():
        raise UsageError(f"--storage {storage}: no such file")
    try:
        optuna.get_all_study_summaries(storage)
    except Exception as exc:  # an unreachable or malformed storage URL
        raise UsageError(f"--storage {storage}: cannot read it ({type(exc).__name__}: {str(exc)[:160]})") from None

