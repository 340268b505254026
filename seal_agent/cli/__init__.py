"""`seal-agent`: the command line.

Each subcommand lives in its own module of this package and exposes ``register(sub)``,
which adds its parser to the subparsers and sets ``handler`` (a function of the parsed
arguments returning the exit code). Adding a command is one module and one line in
``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from seal_agent import __version__
from seal_agent.errors import SealError

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = ("ask", "calibrate", "eval", "mcp")


class OneLineErrorParser(argparse.ArgumentParser):
    """Bad flags end in one line naming the problem (and where to get help), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="seal-agent",
        description="Ask questions about high-resolution images with SEAL / V* guided search.",
    )
    parser.add_argument("--version", action="version", version=f"seal-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"seal_agent.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except SealError as error:
        print(f"seal-agent: {error}", file=sys.stderr)
        return 2


__all__ = ["COMMANDS", "build_parser", "main"]
