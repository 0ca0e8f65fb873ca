"""``emily infer "prompt"`` (``-`` reads it from standard input): one request to the
running inference service, streamed (``--json`` prints the whole reply once done)."""

from __future__ import annotations

import argparse
import json
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
from emily.cli.common import UsageError, add_output, check_text, text_arg

#: Longest prompt the CLI sends (characters); the model's context is the real bound.
MAX_PROMPT_CHARS = 65536


def print_stream(
    replies: Iterator[GenerationChunk], echo: bool = True
) -> tuple[GenerationChunk | None, str]:
    """Write each chunk's text to stdout as it arrives (unless ``echo`` is false);
    returns the final chunk and the whole text."""
    final, texts = None, []
    for c in replies:
        if echo:
            sys.stdout.write(c.text)
            sys.stdout.flush()
        texts.append(c.text)
        if c.done:
            final = c
    if echo:
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
    prompt = text_arg(args.prompt, "the prompt")
    if prompt is None:
        raise UsageError("give a prompt (or - for standard input), e.g. emily infer 'Paris is'")
    check_text(prompt, MAX_PROMPT_CHARS, "the prompt", "emily infer 'Paris is'")
    sampling = {"max_tokens": args.max_tokens, "temperature": args.temperature, "stream": True}
    with Client.connect(bus, CHAT if args.chat else GENERATE) as client:
        if args.chat:
            turn = ChatMessage(role="user", content=prompt)
            replies = client.stream(CHAT, ChatRequest(messages=(turn,), **sampling), args.timeout)
        else:
            request = GenerateRequest(prompt=prompt, **sampling)
            replies = client.stream(GENERATE, request, args.timeout)
        final, text = print_stream(replies, echo=not args.json)
    if args.json:
        doc = {"text": text, **(final.model_dump(mode="json", exclude={"text"}) if final else {})}
        print(json.dumps(doc, indent=2))
        return 0
    if final is not None and final.usage is not None and args.verbose and not args.quiet:
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
    p.add_argument("prompt", nargs="?", default=None, help="the prompt text; - reads stdin")
    p.add_argument(
        "--info", action="store_true", help="show the live service's model and backend instead"
    )
    p.add_argument("--chat", action="store_true", help="send it as a chat turn, not raw text")
    add_sampling(p)
    add_output(p)
    p.set_defaults(func=run)
