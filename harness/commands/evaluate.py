"""``eplb-harness evaluate``: score candidates on a suite or a trace into the store; print the table, write CSV/JSON."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from harness.commands.common import (
    Command,
    add_candidates_arg,
    add_common,
    candidate_specs,
    cases_of,
    positive_int,
    with_knob_variants,
)


class EvaluateCommand(Command):
    name = "evaluate"
    help = "score candidates on a suite and print the table"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_candidates_arg(parser)
        add_common(parser, "suite", "preset")
        parser.add_argument(
            "--trace", help="evaluate on this expert-load trace instead of a suite (needs one --preset or --deployment)"
        )
        parser.add_argument("--window", type=positive_int, help="records summed per trace window (format default)")
        add_common(parser, "deployment")
        add_common(parser, "sweep")
        add_common(parser, "out", "db", "jobs", "cluster", "timeout", "memory_mb", out=None,
                   shown={"out": "results/run-N, N the run's id"})
        parser.add_argument("--repeats", type=positive_int, default=5, help="timed calls per case (after warm-up)")
        parser.add_argument("--force", action="store_true", help="re-evaluate even when the store has the result")
        parser.add_argument("--no-timing", action="store_true", help="skip the timing phase")
        parser.add_argument(
            "--time-per-preset",
            action="store_true",
            help="time one case per preset and deployment (its zipf case) instead of every case",
        )
        add_common(parser, "quiet")

    def run(self, args: argparse.Namespace) -> int:
        from harness import sandbox
        from harness.candidate import Candidate, ContractError, check_source, discover
        from harness.executors import open_executor
        from harness.leaderboard import SUMMARY_COLUMNS, case_results, format_table, leaderboard
        from harness.runner import RunConfig, evaluate
        from harness.store import Store

        cases = cases_of(args)
        candidates: list[Candidate] = []
        broken: dict[str, str] = {}
        for spec in candidate_specs(args):
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
        command = "eplb-harness " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        with open_executor(args.cluster) as executor:
            config = RunConfig(
                limits=sandbox.Limits(timeout_s=args.timeout, memory_mb=args.memory_mb),
                jobs=args.jobs,
                repeats=args.repeats,
                force=args.force,
                quiet=args.quiet,
                time_runs=not args.no_timing,
                time_per_preset=args.time_per_preset,
                executor=executor,
            )
            report = evaluate(store, candidates, cases, config, command=command, suite=args.suite)
        for name, reason in report.broken.items():
            print(f"error: {reason}", file=sys.stderr)
            broken[name] = reason

        per_case = case_results(store, [c.key for c in cases], report.candidate_ids, report.baseline_id)
        table = leaderboard(per_case, case_keys=[c.key for c in cases])
        out = Path(args.out or f"results/run-{report.run_id}")
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
