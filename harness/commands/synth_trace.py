"""``eplb-harness synth-trace``: write a SYNTHETIC, labelled trace."""

from __future__ import annotations

import argparse

from harness.commands.common import (
    Command,
    UsageError,
    add_common,
    positive_float,
    positive_int,
)


class SynthTraceCommand(Command):
    name = "synth-trace"
    help = "write a SYNTHETIC trace-shaped JSON load history"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--preset", required=True, help="model preset giving layers and experts")
        parser.add_argument("--steps", type=positive_int, default=1000, help="records (steps or windows) to write")
        add_common(parser, "seed", seed=0)
        parser.add_argument("--out", required=True, metavar="FILE",
                            help="the trace file to write (.json for --model steps, .npy for noisy)")
        parser.add_argument(
            "--model",
            choices=["steps", "noisy"],
            default="steps",
            help="steps: drifting/day-night/bursty step history; noisy: a workload's window times "
            "(1 + NOISE * N(0,1)) per window",
        )
        parser.add_argument("--noise", type=positive_float, default=0.01, help="noisy model: relative noise per window")
        parser.add_argument("--family", default="zipf", help="noisy model: workload family of the first window")

    def run(self, args: argparse.Namespace) -> int:
        from evaluator.presets import get_preset
        from evaluator.synthetic_traces import write_noisy_windows, write_synthetic_trace
        from evaluator.workloads import WORKLOADS

        if args.model == "noisy":
            if not args.out.endswith(".npy"):
                raise UsageError(f"--model noisy writes a dense .npy trace, not {args.out!r}")
            if args.family not in WORKLOADS:
                raise UsageError(f"unknown workload family {args.family!r}; known: {', '.join(WORKLOADS)}")
            path = write_noisy_windows(
                args.out, get_preset(args.preset), args.steps, args.noise, args.family, args.seed
            )
            print(
                f"wrote SYNTHETIC trace {path} ({args.steps} windows of {args.family} with {args.noise:g} noise, "
                f"preset {args.preset}, seed {args.seed}; replay it with --window 1)"
            )
            return 0
        path = write_synthetic_trace(args.out, get_preset(args.preset), args.steps, args.seed)
        print(f"wrote SYNTHETIC trace {path} ({args.steps} steps, preset {args.preset}, seed {args.seed})")
        return 0
