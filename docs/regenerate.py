"""Rewrite the generated blocks of README.md from the code and a results store.

    .venv/bin/python docs/regenerate.py [--db sqlite:///results/harness.db] [--readme README.md]

Blocks sit between ``<!-- BEGIN generated:NAME -->`` and ``<!-- END generated:NAME -->``:

* ``commands``: every command's usage line and one-line help, from the parser itself;
* ``demo``: the ``quick`` and ``real`` leaderboards as ``./run demo`` leaves them in the store;
* ``default``: the ``default`` suite's leaderboard (``eplb-harness evaluate --builtin
  results/children --suite default --sweep GROUP_LOCAL=0 --sweep GROUP_LOCAL=0+STARTS=1
  --sweep GROUP_LOCAL=0+FORECAST=1 --time-per-preset``);
* ``bench`` (README: deepseek-v3 rows; ``docs/benchmarks.md``: every row) from ``--bench
  results/bench/bench.csv``, written by ``eplb-harness bench --builtin --sweep GROUP_LOCAL=0 --sweep
  GROUP_LOCAL=0+STARTS=1 --sweep GROUP_LOCAL=0+FORECAST=1 --preset deepseek-v3 --preset qwen3-235b
  --preset kimi-k2``.

A leaderboard block whose suite has no result in the store is left as it is, so the
commands block can be refreshed without a store.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commands_block() -> str:
    from harness.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    lines = []
    for name, command in sub.choices.items():
        usage = " ".join(command.format_usage().split())
        usage = usage.removeprefix("usage: ").replace("eplb-harness ", "", 1).replace(" [-h]", "")
        lines.append(f"- `{usage}`: {helps[name]}")
    return "\n".join(lines)


def leaderboard_block(store, suite: str) -> str | None:
    from evaluator.suites import get_suite
    from harness.leaderboard import SUMMARY_COLUMNS, case_results, format_table, leaderboard

    if store is None:
        return None
    keys = [c.key for c in get_suite(suite)]
    per_case = case_results(store, keys)
    if per_case.empty:
        return None
    table = leaderboard(per_case, case_keys=keys)
    # Only the ranked: a store that also served other commands (bench scores a case or two of a
    # suite for its timings) has candidates with partial coverage, which `leaderboard` lists.
    ranked = table[table["rank"].notna()]
    apart = len(table) - len(ranked)
    note = f"\n\n({apart} with results on part of the suite not shown: `eplb-harness leaderboard` lists them.)"
    return format_table(ranked, "md", SUMMARY_COLUMNS) + (note if apart else "")


BENCH_COLUMNS = ["candidate", "preset", "median_ms", "measured_ms", "transport_ms", "speedup_vs_baseline",
                 "gpu_balancedness", "oracle_gap_to_bound", "gap_to_grouped_bound", "group_node_spread",
                 "duplicate_gpu_share", "timed_gpu_balancedness"]


def bench_block(csv: Path, presets: list[str] | None = None) -> str:
    import pandas as pd

    table = pd.read_csv(csv)
    if presets:
        table = table[table["preset"].isin(presets)]
    table = table[[c for c in BENCH_COLUMNS if c in table]].sort_values(["preset", "speedup_vs_baseline"],
                                                                          ascending=[True, False])
    return table.to_markdown(index=False, floatfmt=".4g")


def _machine() -> str:
    from harness.store.sql import cpu_model

    return f"{cpu_model()}, {platform.machine()}, Python {platform.python_version()}"


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- BEGIN generated:{name} -->\n).*?(<!-- END generated:{name} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"error: README has no generated:{name} block")
    return pattern.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="sqlite:///results/harness.db")
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    parser.add_argument("--bench", type=Path, help="a bench.csv for the bench blocks")
    args = parser.parse_args(argv)
    readme = Path(args.readme)
    text = replace_block(readme.read_text(), "commands", commands_block())
    from harness.store import Store, StoreError

    try:
        store = Store(args.db, create=False)
    except StoreError as exc:
        print(f"{exc}: leaderboard blocks kept", file=sys.stderr)
        store = None
    stamp = f"taken {date.today()} on {_machine()}"
    quick, real = leaderboard_block(store, "quick"), leaderboard_block(store, "real")
    if quick and real:
        text = replace_block(text, "demo", f"`quick` suite ({stamp}):\n\n{quick}\n\n`real` suite:\n\n{real}")
    default = leaderboard_block(store, "default")
    if default:
        text = replace_block(text, "default", f"`default` suite ({stamp}):\n\n{default}")
    if args.bench:
        note = f"`eplb-harness bench` ({stamp}; ratios to the baseline timed in the same run)"
        text = replace_block(text, "bench", f"{note}:\n\n{bench_block(args.bench, ['deepseek-v3'])}")
        benchmarks = ROOT / "docs" / "benchmarks.md"
        benchmarks.write_text(replace_block(benchmarks.read_text(), "bench", f"{note}:\n\n{bench_block(args.bench)}"))
    readme.write_text(text)
    print(f"rewrote {readme}" + ("" if default else " (no default-suite results: that block kept)"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
