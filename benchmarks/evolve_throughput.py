"""Evaluations per hour of an evolve config whose LLM answers take ``--latency`` seconds.

Starts a scripted OpenAI-compatible server on 127.0.0.1 (answers that always apply, each
after ``--latency`` s), adds an ``llm`` operator pointing at it to the config (the demo's by
default), runs the loop into a fresh store and prints the figures: evaluations, wall time,
evaluations per hour, LLM calls, and the share of the run spent waiting on calls with nothing
to evaluate (idle CPU).

    .venv/bin/python benchmarks/evolve_throughput.py --latency 5 --evaluations 12
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harness.evolution import Evolution, load_config
from harness.llm.scripted_server import ScriptedChatServer, knob_tweak
from harness.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/evolve-demo.yaml", help="evolve config (YAML)")
    parser.add_argument("--latency", type=float, default=5.0, help="seconds per LLM answer")
    parser.add_argument("--evaluations", type=int, default=12, help="max_evaluations of the run")
    parser.add_argument("--max-concurrent", type=int, default=4, help="LLM calls in flight")
    parser.add_argument("--llm-weight", type=float, default=1.0, help="the llm operator's weight")
    parser.add_argument("--only-llm", action="store_true", help="drop the config's other operators")
    parser.add_argument("--parents", nargs="+", help="parents instead of the config's")
    args = parser.parse_args()
    config = load_config(args.config)
    with tempfile.TemporaryDirectory() as tmp, ScriptedChatServer(
            lambda body, index: knob_tweak(body, index) | {"delay_s": args.latency}) as server:
        config.operators = ({} if args.only_llm else dict(config.operators)) | {
            "llm": {"weight": args.llm_weight, "models": [{"model": "scripted", "base_url": server.url}]}}
        config.max_evaluations, config.max_concurrent, config.out = args.evaluations, args.max_concurrent, tmp
        config.parents = args.parents or config.parents
        evolution = Evolution(config, Store(f"sqlite:///{Path(tmp) / 'h.db'}"))
        started = time.monotonic()
        evolution.run()
        wall = time.monotonic() - started
    totals = evolution.llm_totals
    operators = "llm only" if args.only_llm else "its operators and llm"
    print(f"config {args.config} ({operators}, parents {', '.join(config.parents)}), answers after "
          f"{args.latency:g} s, max_concurrent {args.max_concurrent}")
    print(f"evaluations {evolution.evaluations} in {wall:.0f} s: {evolution.evaluations / wall * 3600:.0f} per hour")
    print(f"llm calls {totals.get('llm_calls', 0)}, most in flight at once {server.max_in_flight}; "
          f"waiting on calls with nothing to evaluate {evolution.waited_s:.0f} s ({evolution.waited_s / wall:.0%})")


if __name__ == "__main__":
    main()
