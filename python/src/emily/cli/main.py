"""Entry point of the ``emily`` console script.

Each sub-command lives in its own module under ``emily.cli`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable
``(argparse.Namespace) -> int`` returning the exit code.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from emily import __version__
from emily.cli import (
    chat,
    config,
    infer,
    memory,
    model,
    observe,
    perceive,
    serve,
    status,
    trace,
    up,
)
from emily.cli.common import Parser, UsageError
from emily.errors import BusError, EmilyError
from emily.mcp import cli as mcp
from emily.observe import setup_logging

COMMANDS = [status, serve, infer, chat, model, memory, up, observe, perceive, trace, config, mcp]
log = logging.getLogger("emily.cli")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every registered sub-command."""
    parser = Parser(
        prog="emily",
        description="Emily Sovereign: cognition, inference and tiered memory over Zenoh.",
    )
    parser.add_argument("--version", action="version", version=f"emily {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,
        help="DEBUG, INFO, WARNING or ERROR (else $EMILY_LOG_LEVEL, else WARNING here and "
        "INFO in services)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (2 for usage errors, 1 for failures).

    Every error ends in one line on stderr naming the command; the traceback of an
    unexpected one is logged at DEBUG (``--log-level DEBUG`` shows it).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if args.command == "serve":  # services log at INFO unless told otherwise
            setup_logging(args.log_level)
        else:
            setup_logging(args.log_level or os.environ.get("EMILY_LOG_LEVEL") or "WARNING")
    except ValueError as exc:
        print(f"emily: {exc}", file=sys.stderr)
        return 2
    except EmilyError as exc:  # the [log] settings are wrong
        print(f"emily: {exc}", file=sys.stderr)
        return 1
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"emily {args.command}: {exc}", file=sys.stderr)
        return 2
    except BusError as exc:  # a service's error reply may span lines: keep it to one
        print(f"emily {args.command}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except EmilyError as exc:
        print(f"emily {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug or an unexpected failure: still one line
        log.debug("emily %s failed", args.command, exc_info=True)
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"emily {args.command}: unexpected {type(exc).__name__}: {first} "
            "(run with --log-level DEBUG for the traceback)",
            file=sys.stderr,
        )
        return 1
