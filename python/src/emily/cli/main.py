"""Entry point of the ``emily`` console script.

Each sub-command lives in its own module under ``emily.cli`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable
``(argparse.Namespace) -> int`` returning the exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from emily import __version__
from emily.cli import chat, infer, memory, model, observe, perceive, serve, status, trace, up
from emily.errors import EmilyError
from emily.observe import setup_logging

COMMANDS = [status, serve, infer, chat, model, memory, up, observe, perceive, trace]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="emily",
        description="Emily Sovereign: cognition, inference and tiered memory over Zenoh.",
    )
    parser.add_argument("--version", action="version", version=f"emily {__version__}")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (2 for usage errors, 1 for failures)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(args.log_level or "WARNING")
    try:
        return int(args.func(args))
    except EmilyError as exc:
        print(f"emily {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
