"""What every command shares: the :class:`Command` interface, option types and common options, case selection."""

from __future__ import annotations

import argparse
import itertools
import math
import os
from typing import TYPE_CHECKING

from harness.sandbox.outcome import Limits
from harness.store import DEFAULT_URL

if TYPE_CHECKING:
    from evaluator.suites import Case
    from harness.candidate import Candidate


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


class Command:
    """One ``eplb-harness`` sub-command: its name, one line of help, its options and what it runs."""

    name: str = ""
    help: str = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the command's options on ``parser``."""

    def run(self, args: argparse.Namespace) -> int:
        """Run with the parsed ``args``; return the exit status."""
        raise NotImplementedError


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def scheduler_address(text: str) -> str:
    from harness.executors.base import check_address

    try:
        return check_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def seed_list(text: str) -> list[int]:
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


def _cores() -> int:
    return os.cpu_count() or 1


# The options several commands take, declared once so that each has one meaning everywhere:
# name -> (flags, argparse keywords). A command picks them by name (:func:`add_common`)
# and may give its own default (``out="results/bench"``).
COMMON_OPTIONS: dict[str, tuple[tuple[str, ...], dict]] = {
    "suite": (("--suite",), {"default": "default",
                             "help": "suite name (see `eplb-harness suites`; default %(default)s)"}),
    "preset": (("--preset",), {"action": "append", "metavar": "NAME",
                               "help": "keep only cases of this model preset (repeatable; `eplb-harness presets`)"}),
    "deployment": (("--deployment",), {
        "metavar": "SPEC",
        "help": "slots=S,gpus=G,nodes=N[,groups=K][,group_local=required|free]: run every case on this "
                "deployment instead of its preset's (with --trace, layers and experts come from the trace)"}),
    "out": (("--out",), {"metavar": "DIR", "help": "folder this command writes its files into (default %(default)s)"}),
    "db": (("--db",), {"default": DEFAULT_URL, "metavar": "URL",
                       "help": "SQLAlchemy URL of the results store (default %(default)s)"}),
    "jobs": (("--jobs",), {"type": positive_int, "default": _cores(), "metavar": "N",
                           "help": "parallel scoring workers (default: the machine's cores, %(default)d)"}),
    "timeout": (("--timeout",), {"type": positive_float, "default": Limits.timeout_s, "metavar": "S",
                                 "help": "wall-time limit of one case in the sandbox, seconds (default %(default)g)"}),
    "memory_mb": (("--memory-mb",), {"type": positive_int, "default": Limits.memory_mb, "metavar": "MB",
                                     "help": "memory a sandbox worker may add, MiB (default %(default)d)"}),
    "cluster": (("--cluster",), {"type": scheduler_address, "metavar": "tcp://HOST:PORT",
                                 "help": "run the tasks on this Dask scheduler's workers (default: this machine; "
                                         "for evolve, the config's cluster:)"}),
    "seed": (("--seed",), {"type": int, "metavar": "N", "help": "seed of this command's own randomness"}),
    "sweep": (("--sweep",), {"action": "append", "default": [], "metavar": "KNOB=V1,V2,...",
                             "help": "also run each candidate that declares KNOB with these values baked in "
                                     "(NAME@KNOB=V), e.g. GROUP_LOCAL=0; knobs joined by + give every "
                                     "combination, e.g. GROUP_LOCAL=0+FORECAST=1"}),
    "quiet": (("--quiet",), {"action": "store_true",
                             "help": "no progress output on stderr (bars on a terminal, stage lines in a log)"}),
}


def add_common(parser: argparse.ArgumentParser, *names: str, shown: dict[str, str] | None = None,
               **defaults: object) -> None:
    """Add the shared options ``names`` (keys of :data:`COMMON_OPTIONS`), with this command's ``defaults``.

    ``shown`` says in words what a default means where its value does not (``out=None`` for a
    folder named after the run).
    """
    for name in names:
        flags, keywords = COMMON_OPTIONS[name]
        keywords = dict(keywords)
        if name in defaults:
            keywords["default"] = defaults[name]
        if shown and name in shown:
            keywords["help"] = keywords["help"].replace("%(default)s", shown[name])
        parser.add_argument(*flags, **keywords)


def add_candidates_arg(parser: argparse.ArgumentParser) -> None:
    """Candidate files or folders, or ``--builtin`` for every built-in; at least one of them is needed."""
    parser.add_argument("candidates", nargs="*", help="candidate .py files or folders of them")
    parser.add_argument("--builtin", action="store_true",
                        help="also every built-in candidate (shipped with the harness; works from any directory)")


def candidate_specs(args: argparse.Namespace, builtin_by_default: bool = False) -> list[str]:
    """The candidate paths a command was given (``--builtin`` adds the shipped ``candidates/`` folder,
    as does giving none when ``builtin_by_default``)."""
    from evaluator.shipped import shipped

    builtin = args.builtin or (builtin_by_default and not args.candidates)
    specs = list(args.candidates) + ([str(shipped("candidates"))] if builtin else [])
    if not specs:
        raise UsageError("no candidate given: name .py files or folders, or pass --builtin")
    return specs


def cases_of(args: argparse.Namespace) -> list[Case]:
    """The cases a command runs: its trace, or its suite's (kept to ``--preset``), on ``--deployment`` if given."""
    from evaluator.deployment import DeploymentError
    from evaluator.presets import get_preset
    from evaluator.suites import Case, get_suite
    from evaluator.traces import TraceError

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


def checked_candidates(specs: list[str]) -> list[Candidate]:
    """Every candidate named by ``specs``; the first that fails the static contract check is a usage error."""
    from harness.candidate import check_source, discover

    candidates = [c for spec in specs for c in discover(spec)]
    for c in candidates:
        check_source(c)
    return candidates


def with_knob_variants(candidates: list[Candidate], sweeps: list[str]) -> list[Candidate]:
    """``candidates`` plus, per sweep, baked variants of each candidate that declares its knobs.

    A sweep is ``KNOB=V1,V2,...`` (a variant ``NAME@KNOB=v`` per value) or several joined by
    ``+``, ``GROUP_LOCAL=0+FORECAST=0,1``: a variant ``NAME@GROUP_LOCAL=0,FORECAST=v`` per
    combination, of each candidate that declares every one of them.
    """
    from harness.knobs import KnobError, declared_knobs
    from harness.tuning import child_for

    out = list(candidates)
    for sweep in sweeps:
        grid = {}
        for part in sweep.split("+"):
            name, _, values = part.partition("=")
            try:
                numbers = [float(v) for v in values.split(",") if v.strip()]
            except ValueError:
                raise UsageError(f"--sweep {sweep!r}: values must be numbers, as in KNOB=0,0.01") from None
            if not name or not numbers or name in grid:
                raise UsageError(f"--sweep {sweep!r}: expected KNOB=V1,V2,... (several joined by +, each once)")
            grid[name] = numbers
        declaring = 0
        for cand in candidates:
            try:
                knobs = {k.name: k for k in declared_knobs(cand.source)}
            except KnobError:
                continue
            if not all(name in knobs for name in grid):
                continue
            declaring += 1
            for combination in itertools.product(*grid.values()):
                values = {name: int(v) if knobs[name].kind == "int" else v
                          for name, v in zip(grid, combination, strict=True)}
                label = ",".join(f"{name}={v:g}" for name, v in values.items())
                out.append(child_for(cand, [knobs[name] for name in grid], values, label, origin="sweep"))
        if not declaring:
            raise UsageError(f"--sweep {sweep!r}: no candidate declares {' and '.join(grid)}")
    return out
