"""``eplb-harness bench``: time the rebalance call per preset against the baseline in the same run."""

from __future__ import annotations

import argparse
from pathlib import Path

from evaluator.presets import PRESETS
from harness.commands.common import (
    Command,
    add_candidates_arg,
    add_common,
    candidate_specs,
    checked_candidates,
    positive_int,
    with_knob_variants,
)


class BenchCommand(Command):
    name = "bench"
    help = "runtime per preset (ratio to the baseline, same run) and suite balance"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_candidates_arg(parser)  # none given: the built-ins
        parser.add_argument("--preset", action="append", metavar="NAME",
                            help="time on this preset (repeatable; default every preset); balance is the whole suite's")
        add_common(parser, "deployment", "suite")
        parser.add_argument("--repeats", type=positive_int, default=20, help="timed calls per preset (after warm-up)")
        add_common(parser, "sweep")
        add_common(parser, "out", "db", "jobs", "cluster", "timeout", "memory_mb", "quiet", out="results/bench")

    def run(self, args: argparse.Namespace) -> int:
        from evaluator.suites import get_suite
        from harness import sandbox
        from harness.bench import bench_table, timed_cases
        from harness.executors import open_executor
        from harness.runner import RunConfig
        from harness.store import Store

        presets = args.preset or list(PRESETS)
        timing = timed_cases(presets, args.deployment)  # a deployment that does not fit: one line, exit 2
        cases = get_suite(args.suite)
        if args.deployment:  # the balance columns too, on the suite's cases of these presets
            cases = [c.with_deployment(args.deployment) for c in cases if c.preset in presets]
        candidates = with_knob_variants(checked_candidates(candidate_specs(args, builtin_by_default=True)), args.sweep)
        with open_executor(args.cluster) as executor:
            config = RunConfig(limits=sandbox.Limits(timeout_s=args.timeout, memory_mb=args.memory_mb),
                               jobs=args.jobs, repeats=args.repeats, warmup=3, quiet=args.quiet, executor=executor)
            table = bench_table(Store(args.db), candidates, cases, timing, config, args.suite)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "bench.csv", index=False)
        print(table.to_markdown(index=False, floatfmt=".4f"))
        print(f"\n{len(presets)} presets x {table['candidate'].nunique()} candidates, {args.repeats} timed calls each "
              f"after 3 warm-up; balance columns: suite {args.suite!r} ({len(cases)} cases). CSV: {out / 'bench.csv'}")
        return 0
