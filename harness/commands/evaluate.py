"""``eplb-harness evaluate``: score candidates on a suite or a trace into the store; print the table, write CSV/JSON."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from harness.commands.common import (
    Command,
    add_deployment_arg,
    add_store_arg,
    cases_of,
    positive_float,
    positive_int,
    with_knob_variants,
)
from harness.sandbox.outcome import Limits


class EvaluateCommand(Command):
    name = "evaluate"
    help = "score candidates on a suite and print the table"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("candidates", nargs="+", help="candidate .py files or directories of them")
        parser.add_argument("--suite", default="default", help="suite name (see `eplb-harness suites`)")
        parser.add_argument("--preset", action="append", help="keep only cases of this preset (repeatable)")
        parser.add_argument(
            "--trace", help="evaluate on this expert-load trace instead of a suite (needs one --preset or --deployment)"
        )
        parser.add_argument("--window", type=positive_int, help="records summed per trace window (format default)")
        add_deployment_arg(parser)
        parser.add_argument(
            "--sweep",
            action="append",
            default=[],
            metavar="KNOB=V1,V2,...",
            help="also evaluate each candidate declaring KNOB with these values, e.g. GROUP_LOCAL=0",
        )
        parser.add_argument("--out", default="results", help="directory for the per-case CSV/JSON (default results/)")
        add_store_arg(parser)
        parser.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1, help="parallel scoring workers")
        parser.add_argument(
            "--timeout", type=positive_float, default=Limits.timeout_s, help="wall-time limit per case, seconds"
        )
        parser.add_argument(
            "--memory-mb", type=positive_int, default=Limits.memory_mb, help="memory a worker may add, MiB"
        )
        parser.add_argument("--repeats", type=positive_int, default=5, help="timed calls per case (after warm-up)")
        parser.add_argument("--force", action="store_true", help="re-evaluate even when the store has the result")
        parser.add_argument("--no-timing", action="store_true", help="skip the timing phase")
        parser.add_argument(
            "--time-per-preset",
            action="store_true",
            help="time one case per preset and deployment (its zipf case) instead of every case",
        )
        parser.add_argument("--quiet", action="store_true", help="no progress bars")

    def run(self, args: argparse.Namespace) -> int:
        from harness import sandbox
        from harness.candidate import Candidate, ContractError, check_source, discover
        from harness.leaderboard import SUMMARY_COLUMNS, case_results, format_table, leaderboard
        from harness.runner import RunConfig, evaluate
        from harness.store import Store

        cases = cases_of(args)
        candidates: list[Candidate] = []
        broken: dict[str, str] = {}
        for spec in args.candidates:
            try:
                found = discover(spec)
            except ContractError as exc:
                broken[spec] = str(exc)
                continue
            for cand in found:
                try:
                    check_source(cand)
                    candidates.append(cand)
                except ContractError as exc:
                    broken[cand.name] = str(exc)
        for reason in broken.values():
            print(f"error: {reason}", file=sys.stderr)
        candidates = with_knob_variants(candidates, args.sweep)
        if not candidates:
            if not broken:
                print("error: no candidate found", file=sys.stderr)
            return 1

        store = Store(args.db)
        config = RunConfig(
            limits=sandbox.Limits(timeout_s=args.timeout, memory_mb=args.memory_mb),
            jobs=args.jobs,
            repeats=args.repeats,
            force=args.force,
            quiet=args.quiet,
            time_runs=not args.no_timing,
            time_per_preset=args.time_per_preset,
        )
        command = "eplb-harness " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        report = evaluate(store, candidates, cases, config, command=command, suite=args.suite)
        for name, reason in report.broken.items():
            print(f"error: {reason}", file=sys.stderr)
            broken[name] = reason

        per_case = case_results(store, [c.key for c in cases], report.candidate_ids, report.baseline_id)
        table = leaderboard(per_case, case_keys=[c.key for c in cases])
        out = Path(args.out) / f"run-{report.run_id}"
        out.mkdir(parents=True, exist_ok=True)
        per_case.to_csv(out / "cases.csv", index=False)
        (out / "cases.json").write_text(per_case.to_json(orient="records", indent=1))
        table.to_csv(out / "summary.csv", index=False)
        print(format_table(table, "md", SUMMARY_COLUMNS))
        print(
            f"\nrun {report.run_id}: {len(cases)} cases, {report.scored} evaluated, {report.reused} reused from the "
            f"store, {report.failed} failed"
            + (f" ({len(report.broken)} candidate(s) could not be loaded)" if report.broken else "")
            + f"; per-case results in {out}/cases.csv"
        )
        return 1 if broken else 0
