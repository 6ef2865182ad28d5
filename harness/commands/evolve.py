"""``eplb-harness evolve``: run an evolve config (islands, MAP-Elites archives, operators)."""

from __future__ import annotations

import argparse

from harness.commands.common import (
    Command,
    UsageError,
    add_common,
)


class EvolveCommand(Command):
    name = "evolve"
    help = "evolve candidates from a YAML config"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--config", required=True, help="evolve config (YAML)")
        add_common(parser, "seed")
        parser.add_argument("--resume", action="store_true", help="continue the run saved in the output folder")
        add_common(parser, "cluster", "db", "quiet")

    def run(self, args: argparse.Namespace) -> int:
        import sys

        from harness.evolution import ConfigError, Evolution, EvolutionError, load_config
        from harness.store import Store

        try:
            config = load_config(args.config)
            if args.seed is not None:
                config.seed = args.seed
            if args.cluster is not None:
                config.cluster = args.cluster
            evolution = Evolution(config, Store(args.db), quiet=args.quiet)
            best = evolution.run(resume=args.resume)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        except EvolutionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            _print_llm_totals(evolution.llm_totals)
            return 1
        name = evolution.metrics[best.candidate_id].get("candidate")
        scored = (
            f"{config.fitness} {best.fitness:.4f} on the private twin of suite {config.suite!r}, "
            f"{evolution.public_fitness:.4f} on the public suite"
            if evolution.public_fitness is not None
            else f"{config.fitness} {best.fitness:.4f}"
        )
        print(
            f"best: {name} ({best.candidate_id}) {scored} after {evolution.evaluations} evaluations, "
            f"{evolution.generation} generations"
        )
        _print_llm_totals(evolution.llm_totals)
        print(f"outputs: {evolution.out}/best.py, progress.png, lineage.json, events.jsonl")
        return 0


def _print_llm_totals(totals: dict) -> None:
    """The run's LLM account, when it made calls: calls, tokens, cost, time waited."""
    if not totals.get("llm_calls"):
        return
    cost = f", ${totals['cost_usd']:.4f}" if totals.get("cost_usd") else ""
    print(f"llm: {totals['llm_calls']} calls ({totals['llm_failed_calls']} failed), "
          f"{totals['prompt_tokens']} prompt + {totals['completion_tokens']} completion tokens{cost}, "
          f"{totals['llm_latency_s']:.1f} s of calls")
