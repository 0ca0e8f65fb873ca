"""What every sub-command shares: the parser class, ``-`` for standard input, usage errors.

- :class:`Parser` shows each option's default in ``--help`` (every sub-command's parser
  is one, so nested ones like ``emily memory ingest`` are too).
- :func:`text_arg` reads ``-`` as standard input, so ``echo hi | emily observe -`` works.
- :class:`UsageError` is bad input from the user: ``emily`` prints its one-line message
  and exits 2, like argparse does for a bad option.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from emily.bus import BusConfig
from emily.bus.client import Client
from emily.bus.endpoints import Endpoint
from emily.errors import EmilyError

#: Largest text read from standard input (characters); the services' own limits are lower.
MAX_STDIN_CHARS = 1 << 20


class UsageError(EmilyError):
    """The command line or its input is wrong; the message says how to fix it (exit 2)."""


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` for options that have a value by default (not for flags
    that are off, nor for options that are unset unless given)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An argument parser whose ``--help`` shows the defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)


def text_arg(value: str | None, what: str = "the text") -> str | None:
    """``value``, or standard input (without its final newline) when it is ``-``.

    Raises
    ------
    UsageError
        When standard input is a terminal (nothing was piped) or holds more than
        :data:`MAX_STDIN_CHARS` characters.
    """
    if value != "-":
        return value
    if sys.stdin.isatty():
        raise UsageError(f"'-' reads {what} from standard input; pipe it in (echo hi | emily ...)")
    data = sys.stdin.read(MAX_STDIN_CHARS + 1)
    if len(data) > MAX_STDIN_CHARS:
        raise UsageError(f"standard input holds more than {MAX_STDIN_CHARS:,} characters")
    return data.rstrip("\n")


def check_text(
    text: str, limit: int, what: str = "the text", example: str = "emily observe 'hello'"
) -> str:
    """``text`` when it is something a service takes: not blank, at most ``limit`` chars.

    Raises
    ------
    UsageError
        Saying what is wrong (empty, or how long it is against the limit).
    """
    if not text.strip():
        raise UsageError(f"{what} is empty; say something, e.g. {example}")
    if len(text) > limit:
        raise UsageError(
            f"{what} is {len(text):,} characters; at most {limit:,} fit in one request"
        )
    if "\x00" in text:
        raise UsageError(f"{what} contains a NUL character")
    return text


def invalid(exc: ValueError) -> str:
    """A validation error (pydantic's) in one line: the first bad field and why."""
    errors = getattr(exc, "errors", None)
    if callable(errors) and errors():
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        return f"{where}: {first.get('msg', exc)}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def add_output(p: argparse.ArgumentParser, quiet: bool = True) -> None:
    """``--json`` (and ``--quiet``) for a command that prints results."""
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    if quiet:
        p.add_argument("-q", "--quiet", action="store_true", help="print only the answer")


def bus_client(args: argparse.Namespace, endpoint: Endpoint[Any, Any]) -> Client:
    """A client of ``endpoint`` that waits ``args.wait`` seconds for the service."""
    return Client.connect(BusConfig.load(), endpoint, wait_s=args.wait)
