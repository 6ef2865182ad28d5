"""The commands of ``eplb-harness``: one :class:`~harness.commands.common.Command` per module.

A command module imports only light modules at the top (argparse, presets, figure
declarations); what it runs (torch, pandas, the store, the sandbox) is imported inside
``run``, so ``eplb-harness --help`` starts fast.
"""

from __future__ import annotations

from harness.commands.apply_diff import ApplyDiffCommand
from harness.commands.bench import BenchCommand
from harness.commands.common import Command
from harness.commands.compare import CompareCommand
from harness.commands.evaluate import EvaluateCommand
from harness.commands.evolve import EvolveCommand
from harness.commands.leaderboard import LeaderboardCommand
from harness.commands.presets import PresetsCommand
from harness.commands.replay import ReplayCommand
from harness.commands.report import ReportCommand
from harness.commands.sandbox import SandboxCommand
from harness.commands.suites import SuitesCommand
from harness.commands.synth_trace import SynthTraceCommand
from harness.commands.tune import TuneCommand

COMMANDS: list[Command] = [
    EvaluateCommand(),
    LeaderboardCommand(),
    ApplyDiffCommand(),
    EvolveCommand(),
    TuneCommand(),
    ReplayCommand(),
    SynthTraceCommand(),
    BenchCommand(),
    CompareCommand(),
    ReportCommand(),
    SandboxCommand(),
    PresetsCommand(),
    SuitesCommand(),
]
