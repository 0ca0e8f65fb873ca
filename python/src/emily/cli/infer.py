"""``emily infer "prompt"``: one request to the running inference service, streamed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from emily.bus import BusConfig
from emily.bus.client import Client
from emily.bus.endpoints import CHAT, GENERATE, INFO
from emily.bus.schemas.inference import (
    ChatMessage,
    ChatRequest,
    GenerateRequest,
    GenerationChunk,
    InferenceInfo,
    InfoRequest,
)
from emily.errors import BusError


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
    with Client.connect(bus, INFO, wait_s=timeout_s) as client:
        return client.call(INFO, InfoRequest(), timeout_s=timeout_s)


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
    sampling = {"max_tokens": args.max_tokens, "temperature": args.temperature, "stream": True}
    with Client.connect(bus, CHAT if args.chat else GENERATE) as client:
        if args.chat:
            turn = ChatMessage(role="user", content=args.prompt)
            replies = client.stream(CHAT, ChatRequest(messages=(turn,), **sampling), args.timeout)
        else:
            request = GenerateRequest(prompt=args.prompt, **sampling)
            replies = client.stream(GENERATE, request, args.timeout)
        final, _ = print_stream(replies)
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
