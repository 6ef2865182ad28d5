"""``eplb-harness apply-diff``: apply a SEARCH/REPLACE diff to a parent candidate and store the child."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands.common import (
    Command,
    UsageError,
    add_common,
)


class ApplyDiffCommand(Command):
    name = "apply-diff"
    help = "apply a SEARCH/REPLACE diff to a parent candidate"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("parent", help="parent candidate .py file")
        parser.add_argument("diff", help="diff file (seed envelope, bare SEARCH/REPLACE blocks, or a full rewrite)")
        parser.add_argument("-o", "--output", help="child file to write (default results/children/NAME.py)")
        parser.add_argument("--name", help="child name (default: the diff's <NAME>)")
        add_common(parser, "db")

    def run(self, args: argparse.Namespace) -> int:
        from harness.candidate import from_file
        from harness.diffs import DiffError, make_child
        from harness.store import Store

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
