"""``eplb-harness`` command line."""

from __future__ import annotations

import argparse
import math
import os
import secrets
import shlex
import sys
from pathlib import Path

from evaluator.deployment import DeploymentError
from evaluator.presets import PRESETS, UnknownPresetError, get_preset
from evaluator.suites import SUITES, Case, UnknownSuiteError, get_suite, private_cases
from evaluator.traces import TraceError
from evaluator.workloads import FAMILIES
from harness import sandbox
from harness.candidate import Candidate, ContractError, check_source, discover, from_file
from harness.diffs import DiffError
from harness.figures import adrs_score
from harness.leaderboard import RANKABLE, SUMMARY_COLUMNS, case_results, format_table, leaderboard
from harness.redact import redact
from harness.sandbox import SandboxError
from harness.store import DEFAULT_URL, Store, StoreError


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not a usage dump
        raise UsageError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def _seed_list(text: str) -> list[int]:
    """``0-4`` or ``0,1,2``: the seeds a comparison repeats every case with."""
    try:
        if "-" in text:
            first, last = (int(v) for v in text.split("-", 1))
            seeds = list(range(first, last + 1))
        else:
            seeds = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FIRST-LAST or a comma list of integers, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"no seed in {text!r}")
    return seeds


def _add_deployment_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--deployment", metavar="SPEC",
                   help="slots=S,gpus=G,nodes=N[,groups=K][,group_local=required|free]: run every case on this "
                        "deployment instead of its preset's (with --trace, layers and experts come from the trace)")


def _add_store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=DEFAULT_URL, help=f"SQLAlchemy URL of the results store (default {DEFAULT_URL})")


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("eplb-harness")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="eplb-harness", description="Evaluate, compare and evolve EPLB load balancers.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ev = sub.add_parser("evaluate", help="score candidates on a suite and print the table")
    ev.add_argument("candidates", nargs="+", help="candidate .py files or directories of them")
    ev.add_argument("--suite", default="default", help="suite name (see `eplb-harness suites`)")
    ev.add_argument("--preset", action="append", help="keep only cases of this preset (repeatable)")
    ev.add_argument("--trace", help="evaluate on this expert-load trace instead of a suite (needs one --preset "
                                    "or --deployment)")
    ev.add_argument("--window", type=_positive_int, help="records summed per trace window (format default)")
    _add_deployment_arg(ev)
    ev.add_argument("--sweep", action="append", default=[], metavar="KNOB=V1,V2,...",
                    help="also evaluate each candidate declaring KNOB with these values, e.g. GROUP_LOCAL=0")
    ev.add_argument("--out", default="results", help="directory for the per-case CSV/JSON (default results/)")
    _add_store_arg(ev)
    ev.add_argument("--jobs", type=_positive_int, default=os.cpu_count() or 1, help="parallel scoring workers")
    ev.add_argument("--timeout", type=_positive_float, default=sandbox.Limits.timeout_s,
                    help="wall-time limit per case, seconds")
    ev.add_argument("--memory-mb", type=_positive_int, default=sandbox.Limits.memory_mb,
                    help="memory a worker may add, MiB")
    ev.add_argument("--repeats", type=_positive_int, default=5, help="timed calls per case (after warm-up)")
    ev.add_argument("--force", action="store_true", help="re-evaluate even when the store has the result")
    ev.add_argument("--no-timing", action="store_true", help="skip the timing phase")
    ev.add_argument("--time-per-preset", action="store_true",
                    help="time one case per preset and deployment (its zipf case) instead of every case")
    ev.add_argument("--quiet", action="store_true", help="no progress bars")

    lb = sub.add_parser("leaderboard", help="rank every stored candidate on a suite")
    _add_store_arg(lb)
    lb.add_argument("--suite", default="default")
    lb.add_argument("--format", choices=["md", "csv", "html"], default="md")
    lb.add_argument("--rank-by", choices=RANKABLE, default="gpu_balancedness")
    lb.add_argument("--plots", metavar="DIR", help="also write pareto.png, gap_heatmap.png, ranking.png here")
    lb.add_argument("--all-columns", action="store_true", help="show per-family and compatibility columns")

    ad = sub.add_parser("apply-diff", help="apply a SEARCH/REPLACE diff to a parent candidate")
    ad.add_argument("parent", help="parent candidate .py file")
    ad.add_argument("diff", help="diff file (seed envelope, bare SEARCH/REPLACE blocks, or a full rewrite)")
    ad.add_argument("-o", "--output", help="child file to write (default results/children/NAME.py)")
    ad.add_argument("--name", help="child name (default: the diff's <NAME>)")
    _add_store_arg(ad)

    evo = sub.add_parser("evolve", help="evolve candidates from a YAML config")
    evo.add_argument("--config", required=True, help="evolve config (YAML)")
    evo.add_argument("--seed", type=int, help="override the config's seed")
    evo.add_argument("--resume", action="store_true", help="continue the run saved in the output folder")
    _add_store_arg(evo)
    evo.add_argument("--quiet", action="store_true")

    tu = sub.add_parser("tune", help="tune a candidate's knobs with Optuna")
    tu.add_argument("candidate", help="candidate .py file")
    tu.add_argument("--trials", type=_positive_int, required=True, help="trials this process runs")
    tu.add_argument("--study", help="study name (default CANDIDATE-OBJECTIVE); workers sharing it share trials")
    tu.add_argument("--storage", default="sqlite:///results/optuna.db",
                    help="Optuna storage URL (PostgreSQL for many workers)")
    tu.add_argument("--suite", default="smoke")
    tu.add_argument("--preset", action="append", help="keep only cases of this preset (repeatable)")
    _add_deployment_arg(tu)
    tu.add_argument("--objective", choices=["balance", "runtime", "combined", "pareto"], default="balance")
    tu.add_argument("--sampler", choices=["tpe", "cmaes", "nsga2", "random"], default=None,
                    help="default tpe, nsga2 for pareto")
    tu.add_argument("--literals", action="store_true", help="tune the candidate's numeric literals")
    tu.add_argument("--private", action="store_true",
                    help="score trials on the suite's private twin (seeds only the --db store knows); "
                         "every worker of a study must then share one --db")
    tu.add_argument("--seed", type=int, help="sampler seed")
    tu.add_argument("--export", help="tuned candidate file (default results/tuned/NAME_tuned.py)")
    tu.add_argument("--pick", type=int, default=0, help="Pareto point to export, by decreasing balancedness")
    tu.add_argument("--out", default="results/tune", help="folder for plots and the trial table")
    tu.add_argument("--jobs", type=_positive_int, default=1, help="parallel scoring workers per trial")
    tu.add_argument("--timeout", type=_positive_float, default=sandbox.Limits.timeout_s)
    _add_store_arg(tu)

    rp = sub.add_parser("replay", help="replay a trace: rebalance every K windows, score each window")
    rp.add_argument("candidates", nargs="+", help="candidate .py files or directories of them")
    rp.add_argument("--trace", required=True, help="expert-load trace (see README for formats)")
    rp.add_argument("--preset", action="append", help="model preset whose deployment the trace runs on")
    _add_deployment_arg(rp)
    rp.add_argument("--window", type=_positive_int, help="records summed per window (format default)")
    rp.add_argument("--every", type=_positive_int, default=1, help="rebalance every K windows")
    rp.add_argument("--estimator", choices=["last", "sliding", "ema"], default="last",
                    help="load estimate a rebalance uses")
    rp.add_argument("--span", type=_positive_int, default=4, help="windows in the sliding sum")
    rp.add_argument("--alpha", type=_positive_float, default=0.5, help="EMA weight of the newest window")
    rp.add_argument("--expert-mb", type=float, default=0.0, help="size of one expert's weights, MiB")
    rp.add_argument("--sweep", action="append", default=[], metavar="KNOB=V1,V2,...",
                    help="also replay each candidate declaring KNOB with these values (trade-off plot)")
    rp.add_argument("--out", default="results/replay", help="folder for replay.csv, timeline.png, tradeoff.png")
    rp.add_argument("--timeout", type=_positive_float, default=600.0, help="wall-time limit per candidate")
    rp.add_argument("--memory-mb", type=_positive_int, default=sandbox.Limits.memory_mb)

    st = sub.add_parser("synth-trace", help="write a SYNTHETIC trace-shaped JSON load history")
    st.add_argument("--preset", required=True)
    st.add_argument("--steps", type=_positive_int, default=1000)
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--out", required=True, help="output file (.json for --model steps, .npy for noisy)")
    st.add_argument("--model", choices=["steps", "noisy"], default="steps",
                    help="steps: drifting/day-night/bursty step history; noisy: a workload's window times "
                         "(1 + NOISE * N(0,1)) per window")
    st.add_argument("--noise", type=_positive_float, default=0.01, help="noisy model: relative noise per window")
    st.add_argument("--family", default="zipf", help="noisy model: workload family of the first window")

    bn = sub.add_parser("bench", help="runtime per preset (ratio to the baseline, same run) and suite balance")
    bn.add_argument("candidates", nargs="*", default=["candidates"], help="candidate files or directories")
    bn.add_argument("--presets", nargs="+", default=list(PRESETS), help="presets to time on")
    _add_deployment_arg(bn)
    bn.add_argument("--repeats", type=_positive_int, default=20, help="timed calls per preset (after warm-up)")
    bn.add_argument("--suite", default="default", help="suite for the balance columns")
    bn.add_argument("--out", default="results/bench", help="folder for bench.csv")
    _add_store_arg(bn)
    bn.add_argument("--quiet", action="store_true")

    cp = sub.add_parser("compare", help="paired per-case comparison with a reference over several seeds")
    cp.add_argument("candidate", help="candidate .py file")
    cp.add_argument("--against", help="reference candidate .py file (default: the baseline)")
    cp.add_argument("--suite", default="default", help="suite whose cases are repeated with every seed")
    cp.add_argument("--preset", action="append", help="keep only cases of this preset (repeatable)")
    _add_deployment_arg(cp)
    cp.add_argument("--seeds", type=_seed_list, default=list(range(5)), help="FIRST-LAST or a comma list (default 0-4)")
    cp.add_argument("--confidence", type=float, default=0.95, help="level of the t-intervals (default 0.95)")
    cp.add_argument("--out", default="results/compare", help="folder for compare.csv and differences.csv")
    _add_store_arg(cp)
    cp.add_argument("--jobs", type=_positive_int, default=os.cpu_count() or 1, help="parallel scoring workers")
    cp.add_argument("--quiet", action="store_true")

    sub.add_parser("sandbox", help="start one sandboxed worker and list the containment layers in force")
    sub.add_parser("presets", help="list model presets")
    sub.add_parser("suites", help="list suites and their cases")
    return parser


def _cases(args: argparse.Namespace) -> list[Case]:
    """The cases a command runs: its trace, or its suite's (kept to ``--preset``), on ``--deployment`` if given."""
    deployment = getattr(args, "deployment", None)
    try:
        if getattr(args, "trace", None):
            if args.preset and len(args.preset) > 1:
                raise UsageError("--trace takes at most one --preset")
            if not args.preset and deployment is None:
                raise UsageError("--trace needs a --preset or a --deployment giving the slots, GPUs and nodes")
            return [Case.from_trace(args.trace, args.preset[0] if args.preset else None, args.window, deployment)]
        cases = get_suite(args.suite)
        if args.preset:
            for name in args.preset:
                get_preset(name)
            cases = [c for c in cases if c.preset in args.preset]
            if not cases:
                raise UsageError(f"suite {args.suite!r} has no case on preset(s) {', '.join(args.preset)}")
        return [c.with_deployment(deployment) for c in cases] if deployment else cases
    except (TraceError, DeploymentError) as exc:
        raise UsageError(str(exc)) from None


def _checked_candidates(specs: list[str]) -> list[Candidate]:
    """Every candidate named by ``specs``; the first that fails the static contract check is a usage error."""
    candidates = [c for spec in specs for c in discover(spec)]
    for c in candidates:
        check_source(c)
    return candidates


def cmd_evaluate(args: argparse.Namespace) -> int:
    from harness.runner import RunConfig, evaluate

    cases = _cases(args)
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
    candidates = _with_knob_variants(candidates, args.sweep)
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
        f"store, {report.failed} failed" + (f" ({len(report.broken)} candidate(s) could not be loaded)"
                                           if report.broken else "") + f"; per-case results in {out}/cases.csv"
    )
    return 1 if broken else 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    cases = get_suite(args.suite)
    store = Store(args.db, create=False)
    per_case = case_results(store, [c.key for c in cases])
    if per_case.empty:
        raise UsageError(f"the store {args.db} has no evaluation on suite {args.suite!r}")
    table = leaderboard(per_case, rank_by=args.rank_by, case_keys=[c.key for c in cases])
    columns = None if args.all_columns else SUMMARY_COLUMNS + [
        c for c in table.columns if c.startswith("gpu_bal:")
    ]
    print(format_table(table, args.format, columns))
    if args.plots:
        from harness.plots import write_plots

        paths = write_plots(per_case, table, args.plots)
        print("plots: " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


def cmd_apply_diff(args: argparse.Namespace) -> int:
    from harness.diffs import make_child

    parent = from_file(args.parent)
    try:
        diff_text = Path(args.diff).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{args.diff}: cannot read diff ({exc.__class__.__name__})") from None
    try:
        child, applied = make_child(parent, diff_text, name=args.name)
    except DiffError as exc:
        raise UsageError(f"{args.diff}: {exc}") from None
    out = Path(args.output) if args.output else Path("results") / "children" / f"{child.name}.py"
    store = Store(args.db)
    store.add_candidate(parent)
    store.add_candidate(child)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(child.source)
    repairs = f"; repairs: {', '.join(applied.repairs)}" if applied.repairs else ""
    print(f"{child.name} ({child.id}) -> {out}; blocks matched: {', '.join(applied.match_levels)}{repairs}")
    return 0


def cmd_evolve(args: argparse.Namespace) -> int:
    from harness.evolution import ConfigError, Evolution, load_config

    try:
        config = load_config(args.config)
        if args.seed is not None:
            config.seed = args.seed
        evolution = Evolution(config, Store(args.db), quiet=args.quiet)
        best = evolution.run(resume=args.resume)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    name = evolution.metrics[best.candidate_id].get("candidate")
    scored = (f"{config.fitness} {best.fitness:.4f} on the private twin of suite {config.suite!r}, "
              f"{evolution.public_fitness:.4f} on the public suite" if evolution.public_fitness is not None
              else f"{config.fitness} {best.fitness:.4f}")
    print(f"best: {name} ({best.candidate_id}) {scored} after {evolution.evaluations} evaluations, "
          f"{evolution.generation} generations")
    print(f"outputs: {evolution.out}/best.py, progress.png, lineage.json, events.jsonl")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from harness.tuning import (
        TuneSettings,
        export_best,
        make_sampler,
        trial_table,
        tunable_knobs,
        tune,
        write_study_plots,
    )

    cases = _cases(args)
    candidate = from_file(args.candidate)
    check_source(candidate)
    sampler = args.sampler or ("nsga2" if args.objective == "pareto" else "tpe")
    try:  # both raise ValueError for bad input; check now, before anything is written
        tunable_knobs(candidate, args.literals)
        make_sampler(sampler, args.seed, multi_objective=args.objective == "pareto")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    settings = TuneSettings(objective=args.objective, sampler=sampler, literals=args.literals, seed=args.seed,
                            limits=sandbox.Limits(timeout_s=args.timeout), jobs=args.jobs)
    study_name = args.study or f"{candidate.name}-{args.objective}"
    store = Store(args.db)
    if args.private:
        cases = private_cases(cases, store.suite_secret())
    study, objective = tune(candidate, store, cases, args.trials, study_name, args.storage, settings)
    out = Path(args.out) / study_name
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


def cmd_replay(args: argparse.Namespace) -> int:
    import pandas as pd

    from evaluator.replay import ReplayPolicy
    from harness.plots import plot_migration_tradeoff, plot_timeline
    from harness.runner import replay_task

    case = _cases(args)[0]
    try:
        policy = ReplayPolicy(every=args.every, estimator=args.estimator, span=args.span, alpha=args.alpha,
                              expert_bytes=args.expert_mb * 2**20)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    candidates = _with_knob_variants(_checked_candidates(args.candidates), args.sweep)
    limits = sandbox.Limits(timeout_s=args.timeout, memory_mb=args.memory_mb)
    frames: dict[int, pd.DataFrame] = {}
    failed = 0
    for index, outcome in sandbox.run_tasks(replay_task, [(c, case, policy) for c in candidates], limits,
                                            jobs=os.cpu_count() or 1):
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
    table = records.pivot_table(index="window", columns="candidate",
                                values=["gpu_balancedness", "copies_transferred"], sort=False)
    table.columns = [f"{cand}:{'bal' if metric == 'gpu_balancedness' else 'copies'}" for metric, cand in table.columns]
    table = table.reset_index()
    print(table.to_markdown(index=False, floatfmt=[".4f" if c.endswith(":bal") else ".0f" for c in table.columns]))
    totals = records.groupby("candidate", sort=False).agg(
        mean_gpu_balancedness=("gpu_balancedness", "mean"), rebalances=("rebalanced", "sum"),
        slots_changed=("slots_changed", "sum"), copies_transferred=("copies_transferred", "sum"),
        gib_moved=("bytes_moved", "sum")).reset_index()
    totals["gib_moved"] /= 2**30
    # A rebalance after the first one is where weights move; the first only places.
    later = records[records["rebalanced"]].groupby("candidate", sort=False).apply(
        lambda r: r["copies_share"].iloc[1:].mean() if len(r) > 1 else 0.0, include_groups=False)
    totals["copies_share_per_rebalance"] = totals["candidate"].map(later).fillna(0.0)
    print()
    print(totals.to_markdown(index=False, floatfmt=("", ".4f", ".0f", ".0f", ".0f", ".2f", ".4f")))
    totals.to_csv(out / "totals.csv", index=False)
    print(f"\nper-window records: {out / 'replay.csv'}; timeline: {plot_timeline(records, out / 'timeline.png')}; "
          f"trade-off: {plot_migration_tradeoff(totals, out / 'tradeoff.png')}")
    return 1 if failed else 0


def _with_knob_variants(candidates: list[Candidate], sweeps: list[str]) -> list[Candidate]:
    """``candidates`` plus, per ``KNOB=V1,V2`` sweep, a baked variant ``NAME@KNOB=v`` of each that declares KNOB."""
    from harness.knobs import KnobError, declared_knobs
    from harness.tuning import child_for

    out = list(candidates)
    for sweep in sweeps:
        name, _, values = sweep.partition("=")
        try:
            numbers = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise UsageError(f"--sweep {sweep!r}: values must be numbers, as in KNOB=0,0.01") from None
        if not name or not numbers:
            raise UsageError(f"--sweep {sweep!r}: expected KNOB=V1,V2,...")
        declaring = 0
        for cand in candidates:
            try:
                knobs = {k.name: k for k in declared_knobs(cand.source)}
            except KnobError:
                continue
            if name not in knobs:
                continue
            declaring += 1
            for v in numbers:
                value = int(v) if knobs[name].kind == "int" else v
                out.append(child_for(cand, [knobs[name]], {name: value}, f"{name}={value:g}", origin="sweep"))
        if not declaring:
            raise UsageError(f"--sweep {sweep!r}: no candidate declares knob {name!r}")
    return out


def cmd_synth_trace(args: argparse.Namespace) -> int:
    from evaluator.synthetic_traces import write_noisy_windows, write_synthetic_trace

    if args.model == "noisy":
        if not args.out.endswith(".npy"):
            raise UsageError(f"--model noisy writes a dense .npy trace, not {args.out!r}")
        if args.family not in FAMILIES:
            raise UsageError(f"unknown workload family {args.family!r}; known: {', '.join(FAMILIES)}")
        path = write_noisy_windows(args.out, get_preset(args.preset), args.steps, args.noise, args.family, args.seed)
        print(f"wrote SYNTHETIC trace {path} ({args.steps} windows of {args.family} with {args.noise:g} noise, "
              f"preset {args.preset}, seed {args.seed}; replay it with --window 1)")
        return 0
    path = write_synthetic_trace(args.out, get_preset(args.preset), args.steps, args.seed)
    print(f"wrote SYNTHETIC trace {path} ({args.steps} steps, preset {args.preset}, seed {args.seed})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import pandas as pd

    from harness.runner import RunConfig, evaluate, time_task

    timed_cases = [Case("zipf", get_preset(p).name, 0, windows=1) for p in args.presets]
    cases = get_suite(args.suite)
    if args.deployment:  # the balance columns too, on the suite's cases of these presets
        cases = [c for c in cases if c.preset in args.presets]
        try:
            timed_cases = [c.with_deployment(args.deployment) for c in timed_cases]
            cases = [c.with_deployment(args.deployment) for c in cases]
        except DeploymentError as exc:
            raise UsageError(str(exc)) from None
    candidates = _checked_candidates(args.candidates)
    store = Store(args.db)
    report = evaluate(store, candidates, cases, RunConfig(jobs=os.cpu_count() or 1, quiet=args.quiet,
                                                          time_runs=False), command="bench", suite=args.suite)
    balance = leaderboard(case_results(store, [c.key for c in cases], report.candidate_ids, report.baseline_id))
    everyone = [store.get_candidate(cid) for cid in report.candidate_ids]  # the baseline first
    # Serial, one worker at a time; the baseline and the candidates alternate on each preset.
    seed = secrets.randbits(32)  # the same unguessable timing inputs for every candidate
    tasks = [(c, case, args.repeats, 3, seed) for case in timed_cases for c in everyone]
    rows = []
    for index, outcome in sandbox.run_tasks(time_task, tasks, sandbox.Limits(), jobs=1):
        cand, case, *_ = tasks[index]
        stats = outcome.value or {}
        rows.append({"candidate": cand.name, "candidate_id": cand.id, "preset": case.where[1:],
                     "median_ms": stats.get("median_s", float("nan")) * 1e3,
                     "iqr_ms": stats.get("iqr_s", float("nan")) * 1e3,
                     # balance of the timed answers themselves: a candidate cannot be fast by answering worse
                     "timed_gpu_balancedness": stats.get("gpu_balancedness", float("nan")),
                     "failure": outcome.failure_kind})
    table = pd.DataFrame(rows)
    base = table[table["candidate_id"] == report.baseline_id].set_index("preset")["median_ms"]
    table["speedup_vs_baseline"] = table["preset"].map(base) / table["median_ms"]
    table = table.merge(balance[["candidate_id", "gpu_balancedness", "gap_to_bound", "group_node_spread", "failures"]],
                        on="candidate_id", how="left").drop(columns="candidate_id")
    # The published score of the suite's balance at this preset's call time.
    table["adrs_score"] = [adrs_score(b, t / 1e3) for b, t in zip(table["gpu_balancedness"], table["median_ms"],
                                                                  strict=True)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "bench.csv", index=False)
    print(table.to_markdown(index=False, floatfmt=".4f"))
    print(f"\n{len(args.presets)} presets x {len(everyone)} candidates, {args.repeats} timed calls each after 3 "
          f"warm-up; balance columns: suite {args.suite!r}. CSV: {out / 'bench.csv'}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import pandas as pd

    from harness.comparison import COMPARED, LOCALITY, compare_table, paired_differences, reseeded, verdict_counts
    from harness.runner import RunConfig, evaluate

    if not 0 < args.confidence < 1:
        raise UsageError(f"--confidence must be between 0 and 1, got {args.confidence}")
    cases = reseeded(_cases(args), args.seeds)
    candidate = _checked_candidates([args.candidate])
    reference = _checked_candidates([args.against]) if args.against else []
    if len(candidate) != 1 or len(reference) > 1:
        raise UsageError("compare takes one candidate file and at most one --against file")
    store = Store(args.db)
    report = evaluate(store, candidate + reference, cases, RunConfig(jobs=args.jobs, quiet=args.quiet,
                                                                     time_runs=False),
                      command="compare", suite=args.suite)
    reference_id = reference[0].id if reference else report.baseline_id
    per_case = case_results(store, [c.key for c in cases], report.candidate_ids, report.baseline_id)
    differences = paired_differences(per_case, cases, candidate[0].id, reference_id)
    table = compare_table(differences, args.confidence)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    differences.to_csv(out / "differences.csv", index=False)
    table.to_csv(out / "compare.csv", index=False)
    shown = table[["case", "seeds", "failed"]].copy()
    shown["group spread (ref)"] = [f"{a:.2f} ({b:.2f})" if pd.notna(a) else "no groups"
                                   for a, b in zip(table[LOCALITY], table[f"reference_{LOCALITY}"], strict=True)]
    for figure in COMPARED.values():
        shown[f"{figure} diff"] = table[f"{figure}_diff"].map("{:+.5f}".format)
        shown[f"{figure} {args.confidence:.0%} CI"] = [f"[{lo:+.5f}, {hi:+.5f}]" for lo, hi in
                                                    zip(table[f"{figure}_low"], table[f"{figure}_high"], strict=True)]
        shown[f"{figure} verdict"] = table[f"{figure}_verdict"]
    print(shown.to_markdown(index=False, disable_numparse=True))
    against = reference[0].name if reference else "the baseline"
    for figure in COMPARED.values():
        counts = ", ".join(f"{n} {verdict}" for verdict, n in sorted(verdict_counts(table, figure).items()))
        print(f"{candidate[0].name} vs {against}, {figure} balancedness: {counts} "
              f"({len(args.seeds)} seeds, {args.confidence:.0%} t-intervals)")
    print(f"CSV: {out / 'compare.csv'}")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    with sandbox.Worker(sandbox.Limits(timeout_s=120)) as worker:
        print(f"a worker of a harness running as uid {os.geteuid()}; layers in force:")
        for layer in worker.layers:
            print(f"  {layer}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    import pandas as pd

    table = pd.DataFrame([p.to_dict() for p in PRESETS.values()])
    print(table.to_markdown(index=False))
    return 0


def cmd_suites(args: argparse.Namespace) -> int:
    for name, cases in SUITES.items():
        print(f"{name}: {len(cases)} cases")
        for case in cases:
            p = case.get_preset()
            print(f"  {case.name:<64} {p.num_layers} x {p.num_experts} on {p.deployment.spec}")
    return 0


COMMANDS = {
    "evaluate": cmd_evaluate,
    "leaderboard": cmd_leaderboard,
    "apply-diff": cmd_apply_diff,
    "evolve": cmd_evolve,
    "tune": cmd_tune,
    "replay": cmd_replay,
    "bench": cmd_bench,
    "compare": cmd_compare,
    "synth-trace": cmd_synth_trace,
    "sandbox": cmd_sandbox,
    "presets": cmd_presets,
    "suites": cmd_suites,
}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except (UsageError, UnknownSuiteError, UnknownPresetError, ContractError, StoreError, SandboxError,
            DeploymentError) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
