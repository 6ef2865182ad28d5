"""``eplb-harness suites``: list the suites and their cases."""

from __future__ import annotations

import argparse

from harness.commands.common import (
    Command,
)


class SuitesCommand(Command):
    name = "suites"
    help = "list suites and their cases"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:
        from evaluator.suites import SUITES, get_suite

        for name in SUITES:
            cases = get_suite(name)
            print(f"{name}: {len(cases)} cases ({SUITES.get(name).__doc__.split(chr(10))[0].rstrip('.')})")
            for case in cases:
                p = case.get_preset()
                print(f"  {case.name:<64} {p.num_layers} x {p.num_experts} on {p.deployment.spec}")
        return 0
