"""``emily infer "prompt"``: one request to the running inference service, streamed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

import zenoh

from emily.bus import BusConfig, open_session
from emily.bus.messages import Message
from emily.bus.rpc import call, stream, wait_for_server
from emily.bus.schemas.inference import (
    ChatMessage,
    ChatRequest,
    GenerateRequest,
    GenerationChunk,
    InferenceInfo,
    InfoRequest,
)
from emily.errors import BusError


def connect(bus: BusConfig, verb: str, timeout_s: float = 5.0) -> tuple[zenoh.Session, str]:
    """Open a session and wait for ``inference/<verb>``; raises :class:`BusError` if absent."""
    session = open_session(bus)
    key = bus.keys.query("inference", verb)
    if not wait_for_server(session, key, timeout_s=timeout_s):
        session.close()  # type: ignore[no-untyped-call]
        raise BusError(
            f"no inference service answers on {key} (connect={list(bus.connect)}); "
            "start it with `emily serve inference`"
        )
    return session, key


def chunks(
    session: zenoh.Session, key: str, request: Message, timeout_s: float
) -> Iterator[GenerationChunk]:
    """The streamed replies to ``request``."""
    return stream(session, key, request, GenerationChunk, timeout_s=timeout_s)


def print_stream(replies: Iterator[GenerationChunk]) -> tuple[GenerationChunk | None, str]:
    """Write each chunk's text to stdout as it arrives; returns the final chunk and the text."""
    final, texts = None, []
    for c in replies:
        sys.stdout.write(c.text)
        sys.stdout.flush()
        texts.append(c.text)
        if c.done:
            final = c
    sys.stdout.write("\n")
    return final, "".join(texts)


def live_info(bus: BusConfig, timeout_s: float = 5.0) -> InferenceInfo:
    """What the running service really runs on (model, backend, device, queue).

    For ``emily status`` and ``emily infer --info``; raises :class:`BusError` when no
    inference service answers within ``timeout_s`` seconds.
    """
    session, key = connect(bus, "info", timeout_s=timeout_s)
    try:
        return call(session, key, InfoRequest(), InferenceInfo, timeout_s=timeout_s)
    finally:
        session.close()  # type: ignore[no-untyped-call]


def show_info(bus: BusConfig) -> int:
    """Print :func:`live_info` as JSON."""
    print(live_info(bus, timeout_s=bus.timeout_s).model_dump_json(indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    """Send the prompt (raw completion, or one chat turn with ``--chat``) and print the answer."""
    bus = BusConfig.load()
    if args.info:
        return show_info(bus)
    if not args.prompt:
        raise BusError("give a prompt, e.g. emily infer 'The capital of France is'")
    verb = "chat" if args.chat else "generate"
    sampling = {"max_tokens": args.max_tokens, "temperature": args.temperature, "stream": True}
    request: Message
    if args.chat:
        turn = ChatMessage(role="user", content=args.prompt)
        request = ChatRequest(messages=(turn,), **sampling)
    else:
        request = GenerateRequest(prompt=args.prompt, **sampling)
    session, key = connect(bus, verb)
    try:
        final, _ = print_stream(chunks(session, key, request, args.timeout))
    finally:
        session.close()  # type: ignore[no-untyped-call]
    if final is not None and final.usage is not None and args.verbose:
        print(
            f"[{final.finish_reason}; {final.usage.completion_tokens} tokens; "
            f"ttft {ms(final.ttft_ms)}; total {ms(final.latency_ms)}]",
            file=sys.stderr,
        )
    return 0


def ms(value: float | None) -> str:
    """``12 ms``, or ``-`` when there is no value (no text was generated)."""
    return "-" if value is None else f"{value:.0f} ms"


def add_sampling(p: argparse.ArgumentParser) -> None:
    """Options shared by ``infer`` and ``chat``."""
    p.add_argument("--max-tokens", type=int, default=None, help="most tokens to generate")
    p.add_argument("--temperature", type=float, default=None, help="0 is greedy")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the answer")
    p.add_argument("-v", "--verbose", action="store_true", help="print timings to stderr")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``emily infer``."""
    p = sub.add_parser("infer", help="ask the inference service once, streaming the answer")
    p.add_argument("prompt", nargs="?", default=None, help="the prompt text")
    p.add_argument(
        "--info", action="store_true", help="show the live service's model and backend instead"
    )
    p.add_argument("--chat", action="store_true", help="send it as a chat turn, not raw text")
    add_sampling(p)
    p.set_defaults(func=run)
