"""``emily chat``: an interactive conversation with the inference service, streamed."""

from __future__ import annotations

import argparse
import sys

from emily.bus import BusConfig
from emily.bus.client import Client
from emily.bus.endpoints import CHAT
from emily.bus.schemas.inference import ChatMessage, ChatRequest
from emily.cli.infer import add_sampling, print_stream

EXIT = {"/exit", "/quit"}


def run(args: argparse.Namespace) -> int:
    """Read a line, stream the answer, repeat until EOF, an empty line or ``/exit``."""
    client = Client.connect(BusConfig.load(), CHAT)
    history: list[ChatMessage] = []
    if args.system:
        history.append(ChatMessage(role="system", content=args.system))
    interactive = sys.stdin.isatty()
    try:
        while True:
            if interactive:
                sys.stdout.write("you> ")
                sys.stdout.flush()
            line = sys.stdin.readline()
            if not line or not line.strip() or line.strip() in EXIT:
                return 0
            history.append(ChatMessage(role="user", content=line.strip()))
            request = ChatRequest(
                messages=tuple(history),
                max_tokens=args.max_tokens,
                temperature=args.temperature,
                stream=True,
            )
            sys.stdout.write("emily> ")
            _, answer = print_stream(client.stream(CHAT, request, args.timeout))
            history.append(ChatMessage(role="assistant", content=answer))
    finally:
        client.close()


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``emily chat``."""
    p = sub.add_parser("chat", help="talk to the inference service interactively")
    p.add_argument("--system", default=None, help="a system message to start with")
    add_sampling(p)
    p.set_defaults(func=run)
