"""``eplb-harness presets``: list the model presets."""

from __future__ import annotations

import argparse

from evaluator.presets import PRESETS
from harness.commands.common import (
    Command,
)


class PresetsCommand(Command):
    name = "presets"
    help = "list model presets"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:
        import pandas as pd

        table = pd.DataFrame([p.to_dict() for p in PRESETS.values()])
        print(table.to_markdown(index=False))
        return 0
