"""``eplb-harness sandbox``: start one sandboxed worker and list the containment layers in force."""

from __future__ import annotations

import argparse
import os

from harness.commands.common import (
    Command,
)


class SandboxCommand(Command):
    name = "sandbox"
    help = "start one sandboxed worker and list the containment layers in force"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:
        from harness import sandbox

        with sandbox.Worker(sandbox.Limits(timeout_s=120)) as worker:
            print(f"a worker of a harness running as uid {os.geteuid()}; layers in force:")
            for layer in worker.layers:
                print(f"  {layer}")
        return 0
