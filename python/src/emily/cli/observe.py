"""``emily observe "text"`` (or ``-`` for standard input, ``--audio FILE``, ``--image
FILE``, or only ``--feedback good|bad``): one cognitive cycle, its response and a
readable trace."""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

from emily.bus import BusConfig
from emily.bus.client import Client
from emily.bus.endpoints import OBSERVE
from emily.bus.schemas.cognition import MAX_TEXT_CHARS, ObserveReply, ObserveRequest, Trace
from emily.bus.schemas.dialogue import DEFAULT_USER
from emily.bus.schemas.perception import b64_media
from emily.cli.common import UsageError, add_output, check_text, invalid, text_arg


def format_trace(trace: Trace) -> str:
    """A human-readable, multi-line rendering of a cycle's trace."""
    r = trace.reflex
    lines = [
        f"tier        {trace.tier} (policy {trace.policy})",
        f"reflex      {r.intent} p={r.confidence:.2f} threshold={r.threshold:.2f} "
        f"{'fired' if r.fired else 'did not fire'} [{r.stage}]",
        "need        " + "  ".join(f"{k}={v:.2f}" for k, v in trace.need.items()),
        "policies    "
        + "  ".join(f"{p.policy}: G={p.G:.2f} q={p.probability:.2f}" for p in trace.policies)
        + f"  (gamma={trace.gamma:.1f})",
        "workspace",
    ]
    lines += [f"  {i.weight:5.2f}  {i.kind:<13} {i.content[:70]}" for i in trace.workspace] or [
        "  (empty)"
    ]
    if trace.memories:
        lines.append("memories")
        lines += [f"  {m.score:5.2f}  [{m.tier}] {m.text[:70]}" for m in trace.memories]
    lines.append("latency ms  " + "  ".join(f"{k}={v:.2f}" for k, v in trace.latencies_ms.items()))
    if trace.ttft_ms is not None:
        lines.append(f"ttft ms     {trace.ttft_ms:.1f}")
    lines.append("allostasis  " + "  ".join(f"{k}={v:.2f}" for k, v in trace.allostasis.items()))
    if trace.missing:
        lines.append(f"missing     {', '.join(trace.missing)}")
    lines += [f"note        {n}" for n in trace.notes]
    lines.append(f"episode     {trace.episode}")
    lines.append(f"cycle       {trace.cycle_id}")
    return "\n".join(lines)


def read_media(path: str) -> str:
    """The file at ``path`` as base64, or :class:`UsageError` saying why it cannot be sent."""
    try:
        data = Path(path).read_bytes()
        if not data:
            raise UsageError(f"{path} is empty: give a recording or an image")
        return b64_media(data)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise UsageError(f"{path}: {exc}") from exc


def build_request(args: argparse.Namespace) -> ObserveRequest:
    """The observation ``args`` describe: exactly one of the text, ``--audio`` and
    ``--image``, or none of them with ``--feedback`` (feedback on the last answer).

    Raises
    ------
    UsageError
        When the input is missing, empty, too long or unreadable, or the options clash.
    """
    text = text_arg(args.text)
    feedback = getattr(args, "feedback", None)
    given = [x for x in (text, args.audio, args.image) if x is not None]
    if len(given) > 1 or (not given and feedback is None):
        raise UsageError(
            "observe one thing: give the text (or - for standard input), --audio FILE, "
            "--image FILE, or --feedback good|bad alone"
        )
    if text is not None:
        check_text(text, MAX_TEXT_CHARS)
    try:
        return ObserveRequest(
            text=text or "",
            audio=None if args.audio is None else read_media(args.audio),
            image=None if args.image is None else read_media(args.image),
            allow_llm=not args.no_llm,
            max_tokens=args.max_tokens,
            user=getattr(args, "user", DEFAULT_USER),
            session=getattr(args, "session", None),
            feedback=feedback,
            feedback_for=getattr(args, "feedback_for", None),
        )
    except ValueError as exc:  # pydantic's ValidationError: name the field, not a dump
        raise UsageError(invalid(exc)) from exc


def show(reply: ObserveReply, args: argparse.Namespace) -> None:
    """Print ``reply``: JSON, the answer alone (``--quiet``), or the answer and the trace."""
    if args.json:
        sys.stdout.write(reply.model_dump_json(indent=2) + "\n")
    elif args.quiet:
        sys.stdout.write(f"{reply.response}\n")
    else:
        sys.stdout.write(f"{reply.response}\n\n[{reply.action}]\n{format_trace(reply.trace)}\n")


def run(args: argparse.Namespace) -> int:
    """Observe the text, clip, image or feedback and print the response and the trace."""
    request = build_request(args)
    with Client.connect(BusConfig.load(), OBSERVE, wait_s=args.wait) as client:
        reply = client.call(OBSERVE, request, args.timeout)
    show(reply, args)
    return 0


def cycle_id(value: str) -> uuid.UUID:
    """``--feedback-for``'s value: a cycle id as printed in a trace (a UUID)."""
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a cycle id (a UUID)") from exc


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``emily observe``."""
    p = sub.add_parser("observe", help="run one cognitive cycle and show its trace")
    p.add_argument("text", nargs="?", help="the observation (what was said); - reads stdin")
    p.add_argument("--audio", metavar="FILE", help="observe a speech recording (WAV, FLAC, ...)")
    p.add_argument("--image", metavar="FILE", help="observe an image with text (PNG, JPEG, ...)")
    p.add_argument("--no-llm", action="store_true", help="never deliberate with the LLM")
    p.add_argument("--max-tokens", type=int, default=128, help="LLM token budget (tokens)")
    p.add_argument("--timeout", type=float, default=120.0, help="reply deadline (s)")
    p.add_argument("--wait", type=float, default=10.0, help="wait this long for the service (s)")
    p.add_argument("--user", default=DEFAULT_USER, help="whose memory the cycle reads and writes")
    p.add_argument("--session", default=None, help="the conversation this turn belongs to")
    p.add_argument(
        "--feedback", choices=("good", "bad"), default=None, help="feedback on an answer"
    )
    p.add_argument(
        "--feedback-for",
        type=cycle_id,
        default=None,
        metavar="CYCLE_ID",
        help="the cycle the feedback is about (else the session's last answer)",
    )
    add_output(p)
    p.set_defaults(func=run)
