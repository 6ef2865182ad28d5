"""``eplb-harness tune``: tune a candidate's knobs (or literals) with Optuna."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.commands.common import (
    Command,
    UsageError,
    add_common,
    cases_of,
    positive_int,
)
from harness.samplers import SAMPLERS

DEFAULT_STORAGE = "sqlite:///results/optuna.db"  # the Optuna storage of tune studies (report reads it too)


class TuneCommand(Command):
    name = "tune"
    help = "tune a candidate's knobs with Optuna"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("candidate", help="candidate .py file")
        parser.add_argument("--trials", type=positive_int, required=True, help="trials this process runs")
        parser.add_argument("--study", help="study name (default CANDIDATE-OBJECTIVE); workers sharing it share trials")
        parser.add_argument(
            "--storage", default=DEFAULT_STORAGE, help="Optuna storage URL (PostgreSQL for many workers)"
        )
        add_common(parser, "suite", "preset", "deployment", suite="smoke")
        parser.add_argument("--objective", choices=["balance", "runtime", "combined", "pareto"], default="balance",
                            help="what a trial maximises: balance, runtime, one weighted figure, or both (pareto)")
        parser.add_argument(
            "--sampler", choices=SAMPLERS.names(), default=None, help="default tpe, nsga2 for pareto"
        )
        parser.add_argument("--literals", action="store_true", help="tune the candidate's numeric literals")
        parser.add_argument(
            "--private",
            action="store_true",
            help="score trials on the suite's private twin (seeds only the --db store knows); "
            "every worker of a study must then share one --db",
        )
        add_common(parser, "seed")
        parser.add_argument("--export", help="tuned candidate file (default results/tuned/NAME_tuned.py)")
        parser.add_argument("--pick", type=int, default=0, help="Pareto point to export, by decreasing balancedness")
        add_common(parser, "out", "db", "jobs", "cluster", "timeout", "memory_mb", "quiet", out=None,
                   shown={"out": "results/tune/STUDY"})

    def run(self, args: argparse.Namespace) -> int:
        from evaluator.suites import private_cases
        from harness import sandbox
        from harness.candidate import check_source, from_file
        from harness.executors import open_executor
        from harness.samplers import make_sampler
        from harness.store import Store
        from harness.tuning import (
            TuneSettings,
            export_best,
            trial_table,
            tunable_knobs,
            tune,
            write_study_plots,
        )

        cases = cases_of(args)
        candidate = from_file(args.candidate)
        check_source(candidate)
        sampler = args.sampler or ("nsga2" if args.objective == "pareto" else "tpe")
        try:  # both raise ValueError for bad input; check now, before anything is written
            tunable_knobs(candidate, args.literals)
            make_sampler(sampler, args.seed, multi_objective=args.objective == "pareto")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        study_name = args.study or f"{candidate.name}-{args.objective}"
        store = Store(args.db)
        if args.private:
            cases = private_cases(cases, store.suite_secret())
        with open_executor(args.cluster) as executor:
            settings = TuneSettings(
                objective=args.objective,
                sampler=sampler,
                literals=args.literals,
                seed=args.seed,
                limits=sandbox.Limits(timeout_s=args.timeout, memory_mb=args.memory_mb),
                jobs=args.jobs,
                quiet=args.quiet,
                executor=executor,
            )
            study, objective = tune(candidate, store, cases, args.trials, study_name, args.storage, settings)
        out = Path(args.out or f"results/tune/{study_name}")
        out.mkdir(parents=True, exist_ok=True)
        trial_table(study).to_csv(out / "trials.csv", index=False)
        plots = write_study_plots(study, out)
        states = [t.state.name for t in study.trials]
        counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
        print(f"study {study_name}: {len(states)} trials ({counts})")
        try:
            path = Path(args.export) if args.export else Path("results") / "tuned" / f"{candidate.name}_tuned.py"
            child = export_best(study, objective, store, path, args.pick)
        except ValueError as exc:
            print(f"error: nothing to export: {exc}", file=sys.stderr)
            return 1
        print(f"best: {child.description} -> {path} ({child.id})")
        print("plots: " + ", ".join(str(p) for p in plots))
        return 0
