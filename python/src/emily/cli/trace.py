"""``emily trace [--follow]``: print workspace broadcasts as they happen."""

from __future__ import annotations

import argparse
import queue
import sys

import zenoh

from emily.bus import BusConfig, open_session
from emily.bus.endpoints import WORKSPACE_BROADCAST
from emily.bus.messages import decode
from emily.bus.schemas.cognition import WorkspaceBroadcast
from emily.errors import EmilyError, PayloadError


def format_broadcast(b: WorkspaceBroadcast) -> str:
    """One broadcast as a header line and one line per item."""
    head = f"cycle {b.cycle} at {b.at:%H:%M:%S.%f} {'ignited' if b.ignited else 'quiet'}"
    return "\n".join(
        [head, *(f"  {i.weight:5.2f}  {i.kind:<13} {i.content[:70]}" for i in b.items)]
    )


def run(args: argparse.Namespace) -> int:
    """Subscribe to ``events/workspace.broadcast`` and print what arrives."""
    bus = BusConfig.load()
    session = open_session(bus)
    inbox: queue.Queue[bytes] = queue.Queue()

    def on_sample(sample: zenoh.Sample) -> None:
        inbox.put(sample.payload.to_bytes())

    sub = session.declare_subscriber(WORKSPACE_BROADCAST.key(bus.keys), on_sample)
    shown = 0
    try:
        while args.follow or shown < args.count:
            try:
                raw = inbox.get(timeout=None if args.follow else args.timeout)
            except queue.Empty:
                raise EmilyError(
                    f"no workspace broadcast within {args.timeout:g} s: is cognition running "
                    "(`emily up`), and is something observing (`emily observe ...`)?"
                ) from None
            try:
                cast = decode(WorkspaceBroadcast, raw)
                text = cast.model_dump_json() if args.json else format_broadcast(cast)
                sys.stdout.write(text + "\n")
            except PayloadError as exc:
                print(f"emily trace: skipped a malformed broadcast: {exc}", file=sys.stderr)
            sys.stdout.flush()
            shown += 1
    finally:
        sub.undeclare()  # type: ignore[no-untyped-call]
        session.close()  # type: ignore[no-untyped-call]
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``emily trace``."""
    p = sub.add_parser("trace", help="print workspace broadcasts (--follow to stream)")
    p.add_argument("--follow", action="store_true", help="keep streaming until Ctrl-C")
    p.add_argument("--count", type=int, default=1, help="without --follow: broadcasts to show")
    p.add_argument("--timeout", type=float, default=60.0, help="without --follow: wait (s)")
    p.add_argument("--json", action="store_true", help="one JSON line per broadcast")
    p.set_defaults(func=run)
