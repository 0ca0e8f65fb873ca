"""``emily perceive --audio FILE`` / ``--image FILE``: what the perception service hears
in a clip or reads in an image, without a cognitive cycle or a stored episode."""

from __future__ import annotations

import argparse
import sys

from emily.bus import BusConfig
from emily.bus.client import Client
from emily.bus.endpoints import READ, TRANSCRIBE
from emily.bus.schemas.perception import ReadReply, ReadRequest, TranscribeReply, TranscribeRequest
from emily.cli.observe import read_media
from emily.errors import EmilyError


def format_transcript(reply: TranscribeReply) -> str:
    """The transcript, then one line per segment: times (s), confidence and text."""
    lines = [reply.text, ""]
    lines += [
        f"{s.start_s:7.2f} {s.end_s:7.2f}  p={s.confidence:.2f}  {s.text}" for s in reply.segments
    ]
    lines.append(
        f"{reply.model}  {reply.language} ({reply.language_probability:.2f})  "
        f"{reply.duration_s:.1f} s of audio, {reply.speech_s:.1f} s speech, "
        f"{reply.elapsed_ms:.0f} ms  sha256 {reply.sha256}"
    )
    return "\n".join(lines)


def format_read(reply: ReadReply) -> str:
    """The text read, then its model, mean confidence, size (px), time (ms) and sha256."""
    return (
        f"{reply.text}\n\n{reply.model}  p={reply.confidence:.2f}  {len(reply.words)} words  "
        f"{reply.width}x{reply.height} px  {reply.elapsed_ms:.0f} ms  sha256 {reply.sha256}"
    )


def run(args: argparse.Namespace) -> int:
    """Transcribe ``--audio`` or read ``--image`` and print the result (or JSON)."""
    if (args.audio is None) == (args.image is None):
        raise EmilyError("give --audio FILE or --image FILE")
    bus = BusConfig.load()
    reply: TranscribeReply | ReadReply
    if args.audio is not None:
        req = TranscribeRequest(audio=read_media(args.audio), language=args.language)
        with Client.connect(bus, TRANSCRIBE, wait_s=args.wait) as client:
            reply = client.call(TRANSCRIBE, req, args.timeout)
        text = format_transcript(reply)
    else:
        with Client.connect(bus, READ, wait_s=args.wait) as client:
            reply = client.call(READ, ReadRequest(image=read_media(args.image)), args.timeout)
        text = format_read(reply)
    sys.stdout.write((reply.model_dump_json(indent=2) if args.json else text) + "\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``emily perceive``."""
    p = sub.add_parser("perceive", help="transcribe a clip or read an image (nothing stored)")
    p.add_argument("--audio", metavar="FILE", help="a speech recording (WAV, FLAC, OGG, MP3, ...)")
    p.add_argument("--image", metavar="FILE", help="an image with text (PNG, JPEG, WebP, ...)")
    p.add_argument("--language", default=None, help="ISO 639-1 code; default: detect")
    p.add_argument("--timeout", type=float, default=300.0, help="reply deadline (s)")
    p.add_argument("--wait", type=float, default=10.0, help="wait this long for the service (s)")
    p.add_argument("--json", action="store_true", help="print the reply as JSON")
    p.set_defaults(func=run)
