"""``emily memory ingest|recall|stats|consolidate|facts``: the memory service over the
bus (forget, correct, export, events and rebuild are in :mod:`emily.cli.memory_lifecycle`)."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import uuid
from pathlib import Path

from tqdm import tqdm

from emily.bus.endpoints import CONSOLIDATE, FACTS, RECALL, STATS, STORE
from emily.bus.messages import decode
from emily.bus.schemas.facts import ConsolidateRequest, FactsRequest
from emily.bus.schemas.memory import EpisodeIn, RecallRequest, StatsRequest, StoreRequest
from emily.cli.common import bus_client
from emily.cli.memory_lifecycle import register_lifecycle
from emily.errors import EmilyError, PayloadError


def _is_fact(line: str) -> bool:
    """Whether an ``emily memory export`` line is a fact (``{"fact": {...}}``)."""
    if not line.lstrip().startswith('{"fact"'):
        return False
    try:
        obj = json.loads(line)
    except ValueError:
        return False
    return isinstance(obj, dict) and set(obj) == {"fact"}


def read_jsonl(path: Path, text: str | None = None) -> list[EpisodeIn]:
    """Every line of ``path`` (or of ``text``, read from standard input, when given) as
    an :class:`EpisodeIn`; all bad lines are reported at once.

    Raises
    ------
    EmilyError
        Naming each bad line and field; nothing is sent when any line is bad.
    """
    if text is None and not path.is_file():
        raise EmilyError(f"{path} is not a file; give a JSONL file with one episode per line")
    episodes, errors = [], []
    body = path.read_text(encoding="utf-8") if text is None else text
    for n, line in enumerate(body.split("\n"), 1):  # not splitlines: JSON may hold U+2028
        if not line.strip() or _is_fact(line):
            continue
        try:
            episodes.append(decode(EpisodeIn, line))
        except PayloadError as exc:
            errors.append(f"{path}:{n}: {exc}")
    if errors:
        shown = "\n".join(errors[:20]) + (
            f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        )
        raise EmilyError(
            f"{len(errors)} bad lines, nothing was stored; fix them and rerun:\n{shown}"
        )
    return episodes


def ingest(args: argparse.Namespace) -> int:
    """Store a JSONL file in batches, with a progress bar.

    A line without an ``id`` gets one derived from its line number and bytes (a UUIDv8:
    the first 48 bits are its ``timestamp`` in Unix ms when it has one, so ids keep time
    order, the rest a SHA-256 of the two), so rerunning an interrupted ingest stores no
    line twice. On failure it says how many lines were stored.
    """
    stdin = args.file == "-"
    path = Path("<stdin>" if stdin else args.file)
    if not stdin and not path.is_file():
        return len(read_jsonl(path))  # raises: not a file
    text = sys.stdin.read() if stdin else path.read_text(encoding="utf-8")
    episodes = read_jsonl(path, text)
    # the same lines read_jsonl kept, in order
    lines = [
        (n, line.strip())
        for n, line in enumerate(text.split("\n"), 1)
        if line.strip() and not _is_fact(line)
    ]
    skipped = sum(1 for line in text.split("\n") if _is_fact(line))
    for i, (ep, (n, line)) in enumerate(zip(episodes, lines, strict=True)):
        if ep.id is None:
            digest = hashlib.sha256(f"{n}\n{line}".encode()).digest()
            ms = int(ep.timestamp.timestamp() * 1000) if ep.timestamp else None
            head = ms.to_bytes(6, "big") if ms is not None and 0 <= ms < 1 << 48 else digest[16:22]
            raw = bytearray(head + digest[:10])
            raw[6] = 0x80 | (raw[6] & 0x0F)  # version 8
            raw[8] = 0x80 | (raw[8] & 0x3F)  # RFC 9562 variant
            episodes[i] = ep.model_copy(update={"id": uuid.UUID(bytes=bytes(raw))})
    queued = done = withheld = 0
    try:
        with (
            bus_client(args, STORE) as client,
            tqdm(
                total=len(episodes),
                unit="ep",
                desc="ingest",
                disable=args.quiet or not sys.stderr.isatty(),  # no bar in logs or pipes
            ) as bar,
        ):
            for i in range(0, len(episodes), args.batch):
                batch = episodes[i : i + args.batch]
                req = StoreRequest(episodes=batch, restore=getattr(args, "restore", False))
                reply = client.call(STORE, req, args.timeout)
                queued += reply.queued
                withheld += len(reply.withheld)
                done += len(batch)
                bar.update(len(batch))
    except (Exception, KeyboardInterrupt):
        last = f" (through line {lines[done - 1][0]})" if done else ""
        print(
            f"stored {done} of {len(episodes)} episodes{last}; rerun the same command to "
            "store the rest (stored lines are not stored twice)",
            file=sys.stderr,
        )
        raise
    if getattr(args, "json", False):
        stored = len(episodes) - withheld
        print(json.dumps({"stored": stored, "queued": queued, "withheld": withheld}))
        return 0
    note = f" ({queued} queued in the outbox until Postgres is back)" if queued else ""
    print(f"stored {len(episodes) - withheld} episodes{note}")
    if withheld:
        print(
            f"{withheld} episodes withheld: a forget made after they were said covers them; "
            "--restore stores them anyway",
            file=sys.stderr,
        )
    if skipped:
        print(
            f"{skipped} fact lines skipped: facts are drawn again from the statements by "
            "consolidation (emily memory consolidate)",
            file=sys.stderr,
        )
    return 0


def recall(args: argparse.Namespace) -> int:
    """Print the nearest episodes to a text."""
    filters = {"since": args.since, "until": args.until, "source": args.source}
    req = decode(
        RecallRequest,
        {
            "text": args.text,
            "k": args.k,
            "scope": args.scope,
            "filters": {k: v for k, v in filters.items() if v is not None},
        },
    )
    with bus_client(args, RECALL) as client:
        reply = client.call(RECALL, req)
    if args.json:
        print(reply.model_dump_json(indent=2))
        return 0
    for hit in reply.hits:
        ep = hit.episode
        print(f"{hit.score:6.3f} {hit.tier} {ep.timestamp:%Y-%m-%d %H:%M} {ep.text}")
    print(f"({len(reply.hits)} hits in {reply.took_ms:.1f} ms)", file=sys.stderr)
    return 0


def stats(args: argparse.Namespace) -> int:
    """Print tier sizes, hit rates, pool and index parameters."""
    with bus_client(args, STATS) as client:
        reply = client.call(STATS, StatsRequest())
    if args.json:
        print(reply.model_dump_json(indent=2))
        return 0
    print(f"episodes: {reply.episodes}   outbox: {reply.outbox_pending}   device: {reply.device}")
    for t in reply.tiers:
        cap = "" if t.capacity is None else f"/{t.capacity}"
        print(f"  {t.tier}: {t.size}{cap:<8} hits {t.hits:<8} hit rate {t.hit_rate:.1%}")
    print(f"pool: {json.dumps(reply.pool.model_dump(exclude={'v'}))}")
    print(f"index: {json.dumps(reply.index.model_dump(exclude={'v'}))}")
    return 0


def consolidate(args: argparse.Namespace) -> int:
    """Run one consolidation pass now and print what it did."""
    req = decode(ConsolidateRequest, {"user": args.user, "limit": args.limit})
    with bus_client(args, CONSOLIDATE) as client:
        reply = client.call(CONSOLIDATE, req, timeout_s=args.timeout)
    if args.json:
        print(reply.model_dump_json(indent=2))
        return 0
    print(
        f"read {reply.episodes} statements: {reply.facts_added} facts added "
        f"({reply.facts_superseded} superseding an older value), {reply.facts_reinforced} "
        f"reinforced, {reply.merged} repeated statements merged, in {reply.took_ms:.0f} ms"
    )
    return 0


def facts(args: argparse.Namespace) -> int:
    """Print a user's facts matching a text or a subject/relation."""
    fields = {"text": args.text, "subject": args.subject, "relation": args.relation}
    req = decode(
        FactsRequest,
        {"user": args.user, "history": args.history, "k": args.k}
        | {k: v for k, v in fields.items() if v is not None},
    )
    with bus_client(args, FACTS) as client:
        reply = client.call(FACTS, req)
    if args.json:
        print(reply.model_dump_json(indent=2))
        return 0
    for f in reply.facts:
        until = "now" if f.valid_to is None else f"{f.valid_to:%Y-%m-%d %H:%M}"
        print(
            f"{f.subject} {f.relation} = {f.value}   ({f.valid_from:%Y-%m-%d %H:%M} to {until}, "
            f"said {f.count}x, {f.id})"
        )
    print(f"({len(reply.facts)} facts in {reply.took_ms:.1f} ms)", file=sys.stderr)
    return 0


def _register_facts(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    c = verbs.add_parser("consolidate", help="turn unconsolidated statements into facts now")
    c.add_argument("--user", help="only this user's statements (default: every user's)")
    c.add_argument("--limit", type=int, default=1000, help="most statements to read")
    c.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the pass")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=consolidate)
    f = verbs.add_parser("facts", help="facts drawn from what a user said")
    f.add_argument("text", nargs="?", help="what to look for (vector, full text and graph)")
    f.add_argument("--user", default="default", help="whose facts (default: default)")
    f.add_argument("--subject", help="only this subject (me: the user)")
    f.add_argument("--relation", help="only this relation (name, lives_in, ...)")
    f.add_argument("--history", action="store_true", help="superseded values too")
    f.add_argument("-k", type=int, default=10, help="how many facts (1-100)")
    f.add_argument("--json", action="store_true", help="machine-readable output")
    f.set_defaults(func=facts)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``emily memory``."""
    p = sub.add_parser("memory", help="store and recall episodes in the memory service")
    p.add_argument("--wait", type=float, default=5.0, help="seconds to wait for the service")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    i = verbs.add_parser("ingest", help="store every episode of a JSONL file")
    i.add_argument("file", help='JSONL: one episode per line ({"text": ..., ...}); - reads stdin')
    i.add_argument("--batch", type=int, default=256, help="episodes per store request")
    i.add_argument("--timeout", type=float, default=120.0, help="seconds per batch")
    i.add_argument("--quiet", action="store_true", help="no progress bar")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.add_argument(
        "--restore",
        action="store_true",
        help="store even episodes an earlier forget covers (a deliberate re-ingest)",
    )
    i.set_defaults(func=ingest)
    r = verbs.add_parser("recall", help="the nearest episodes to a text")
    r.add_argument("text")
    r.add_argument("-k", type=int, default=5, help="how many episodes (1-100)")
    r.add_argument("--since", help="ISO time: only episodes at or after it")
    r.add_argument("--until", help="ISO time: only episodes before it")
    r.add_argument("--source", help="only episodes from this source")
    r.add_argument("--scope", choices=["all", "hot"], default="all")
    r.add_argument("--json", action="store_true", help="machine-readable output")
    r.set_defaults(func=recall)
    s = verbs.add_parser("stats", help="tier sizes, hit rates, pool and index parameters")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=stats)
    _register_facts(verbs)
    register_lifecycle(verbs)
