"""``emily memory forget|correct|export|events|rebuild``: what a user does to their memory
as a whole, over the bus."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from emily.bus.endpoints import CORRECT, EVENTS, EXPORT, FORGET, REBUILD
from emily.bus.messages import decode
from emily.bus.schemas.lifecycle import (
    CorrectRequest,
    EventsRequest,
    ExportRequest,
    ForgetRequest,
    RebuildRequest,
)
from emily.bus.schemas.memory import EpisodeIn
from emily.cli.common import bus_client, text_arg
from emily.errors import EmilyError

#: Fields of an exported episode that ``ingest`` stores again (repeats and last_seen
#: are the memory's own bookkeeping and start afresh).
_EPISODE_FIELDS = set(EpisodeIn.model_fields) - {"embedding"}


def forget(args: argparse.Namespace) -> int:
    """Forget episodes by id or by a text they contain."""
    if bool(args.ids) == (args.match is not None):
        raise EmilyError("give episode ids or --match TEXT (not both)")
    body: dict[str, Any] = {"user": args.user, "dry_run": args.dry_run}
    body |= {"ids": args.ids} if args.ids else {"match": text_arg(args.match, "the match")}
    req = decode(ForgetRequest, body)
    with bus_client(args, FORGET) as client:
        reply = client.call(FORGET, req, timeout_s=args.timeout)
    if args.json:
        print(reply.model_dump_json(indent=2))
        return 0
    verb = "would forget" if reply.dry_run else "forgot"
    for key in reply.forgotten:
        print(key)
    print(
        f"{verb} {len(reply.forgotten)} episodes and {reply.facts_removed} facts drawn only "
        f"from them"
        + (f"; not found for {args.user}: {len(reply.missing)}" if reply.missing else ""),
        file=sys.stderr,
    )
    return 1 if reply.missing else 0


def correct(args: argparse.Namespace) -> int:
    """Replace an episode's text; print the facts now drawn from it."""
    req = decode(CorrectRequest, {"user": args.user, "id": args.id, "text": text_arg(args.text)})
    with bus_client(args, CORRECT) as client:
        reply = client.call(CORRECT, req, timeout_s=args.timeout)
    if args.json:
        print(reply.model_dump_json(indent=2))
        return 0
    print(f"{reply.episode.id}: {reply.episode.text}")
    for f in reply.facts:
        print(f"  {f.subject} {f.relation} = {f.value}")
    return 0


def export(args: argparse.Namespace) -> int:
    """Write a user's episodes (and facts) as JSONL that ``emily memory ingest`` reads."""
    out = sys.stdout if args.out in (None, "-") else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    episodes = n_facts = 0
    try:
        with bus_client(args, EXPORT) as client:
            after = None
            while True:
                req = ExportRequest(user=args.user, after=after, facts=not args.no_facts)
                page = client.call(EXPORT, req, timeout_s=args.timeout)
                for ep in page.episodes:
                    out.write(ep.model_dump_json(include=_EPISODE_FIELDS) + "\n")
                for fact in page.facts:
                    out.write(json.dumps({"fact": fact.model_dump(mode="json", exclude={"v"})}))
                    out.write("\n")
                episodes += len(page.episodes)
                n_facts += len(page.facts)
                if page.next is None:
                    break
                after = page.next
    finally:
        if out is not sys.stdout:
            out.close()
    where = "" if out is sys.stdout else f" to {args.out}"
    print(
        f"exported {episodes} episodes and {n_facts} facts of {args.user}{where}", file=sys.stderr
    )
    return 0


def events(args: argparse.Namespace) -> int:
    """Print the event log after ``--since`` (every page up to its end)."""
    since, shown = args.since, 0
    with bus_client(args, EVENTS) as client:
        while True:
            page = client.call(EVENTS, decode(EventsRequest, {"since": since}), timeout_s=30)
            for e in page.events:
                if args.json:
                    print(e.model_dump_json(exclude={"v"}))
                    continue
                what = e.episode_id or e.fact_id or ""
                detail = " ".join(f"{k}={v}" for k, v in e.detail.items())
                at = f"{e.at:%Y-%m-%d %H:%M:%S}"
                print(f"{e.seq:>8} {at} {e.op:<9} {e.user or '-':<10} {what} {detail}")
            shown += len(page.events)
            if not page.events or page.events[-1].seq >= page.last:
                break
            since = page.events[-1].seq
    print(f"({shown} events; the log ends at {page.last})", file=sys.stderr)
    if page.trimmed > args.since:
        print(
            f"(events up to {page.trimmed} were trimmed from the log by its retention, "
            "memory.events_keep_days and events_keep_max)",
            file=sys.stderr,
        )
    return 0


def rebuild(args: argparse.Namespace) -> int:
    """Rebuild the index and tier map from L3 and the log; say whether they matched."""
    with bus_client(args, REBUILD) as client:
        reply = client.call(REBUILD, RebuildRequest(), timeout_s=args.timeout)
    if args.json:
        print(reply.model_dump_json(indent=2))
        return 0
    tiers = " ".join(f"{k}={v}" for k, v in reply.tiers.items())
    verdict = "matched" if reply.matched else "did not match (now rebuilt)"
    print(
        f"rebuilt: {reply.indexed} episodes indexed, tiers {tiers}; the running projections "
        f"{verdict}; {reply.took_ms:.0f} ms"
    )
    return 0


def register_lifecycle(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add forget, correct, export, events and rebuild under ``emily memory``."""
    f = verbs.add_parser("forget", help="forget episodes everywhere (by id or --match TEXT)")
    f.add_argument("ids", nargs="*", metavar="ID", help="episode ids")
    f.add_argument("--match", help="forget the episodes whose text contains this (- reads stdin)")
    f.add_argument("--user", default="default", help="whose episodes")
    f.add_argument("--dry-run", action="store_true", help="only list what would be forgotten")
    c = verbs.add_parser("correct", help="replace an episode's text (its facts are re-drawn)")
    c.add_argument("id", help="episode id")
    c.add_argument("text", help="the corrected text (- reads stdin)")
    c.add_argument("--user", default="default", help="whose episode")
    e = verbs.add_parser("export", help="a user's episodes and facts as JSONL (ingest reads it)")
    e.add_argument("--user", default="default", help="whose memory")
    e.add_argument("--out", help="file to write (default: standard output)")
    e.add_argument("--no-facts", action="store_true", help="episodes only")
    v = verbs.add_parser("events", help="the event log after a sequence number")
    v.add_argument("--since", type=int, default=0, help="print events with a greater seq")
    b = verbs.add_parser("rebuild", help="rebuild the index and tier map from L3 and the log")
    for parser, func in ((f, forget), (c, correct), (e, export), (v, events), (b, rebuild)):
        if parser is not e:
            parser.add_argument("--json", action="store_true", help="machine-readable output")
        if parser is not v:
            parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait")
        parser.set_defaults(func=func)
