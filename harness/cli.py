"""``eplb-harness`` command line: the parser built from :data:`harness.commands.COMMANDS`, and the error policy.

Every command is one :class:`~harness.commands.common.Command` in ``harness/commands/``.
Bad input of any kind ends here as one line on stderr and exit status 2; a cluster that
cannot run the work (unreachable, lost) as one line and exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys

from harness.commands import COMMANDS
from harness.commands.common import UsageError
from harness.executors.base import ClusterError
from harness.redact import redact


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not a usage dump
        raise UsageError(f"{self.prog}: {message}")


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("eplb-harness")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="eplb-harness", description="Evaluate, compare and evolve EPLB load balancers.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command in COMMANDS:
        command.add_arguments(sub.add_parser(command.name, help=command.help, description=command.help))
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input (a file, an option, a config), not a bug."""
    from evaluator.deployment import DeploymentError
    from evaluator.presets import UnknownPresetError
    from evaluator.suites import UnknownSuiteError
    from harness.candidate import ContractError
    from harness.sandbox import SandboxError
    from harness.store import StoreError

    return (UsageError, UnknownSuiteError, UnknownPresetError, ContractError, StoreError, SandboxError,
            DeploymentError)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        command = next(c for c in COMMANDS if c.name == args.command)
        return command.run(args)
    except UsageError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        if isinstance(exc, _user_errors()):
            print(f"error: {redact(str(exc))}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
