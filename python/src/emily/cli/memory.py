"""``emily memory ingest|recall|stats|consolidate|facts|forget|correct|export|events|rebuild``:
the memory service over the bus."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from tqdm import tqdm

from emily.bus import BusConfig
from emily.bus.client import Client
from emily.bus.endpoints import (
    CONSOLIDATE,
    CORRECT,
    EVENTS,
    EXPORT,
    FACTS,
    FORGET,
    REBUILD,
    RECALL,
    STATS,
    STORE,
    Endpoint,
)
from emily.bus.messages import decode
from emily.bus.schemas.facts import ConsolidateRequest, FactsRequest
from emily.bus.schemas.lifecycle import (
    CorrectRequest,
    EventsRequest,
    ExportRequest,
    ForgetRequest,
    RebuildRequest,
)
from emily.bus.schemas.memory import EpisodeIn, RecallRequest, StatsRequest, StoreRequest
from emily.cli.common import text_arg
from emily.errors import EmilyError, PayloadError

#: Fields of an exported episode that ``ingest`` stores again (repeats and last_seen
#: are the memory's own bookkeeping and start afresh).
_EPISODE_FIELDS = set(EpisodeIn.model_fields) - {"embedding"}


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


def _connect(args: argparse.Namespace, endpoint: Endpoint[Any, Any]) -> Client:
    return Client.connect(BusConfig.load(), endpoint, wait_s=args.wait)


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
    queued = done = 0
    try:
        with (
            _connect(args, STORE) as client,
            tqdm(
                total=len(episodes),
                unit="ep",
                desc="ingest",
                disable=args.quiet or not sys.stderr.isatty(),  # no bar in logs or pipes
            ) as bar,
        ):
            for i in range(0, len(episodes), args.batch):
                batch = episodes[i : i + args.batch]
                reply = client.call(STORE, StoreRequest(episodes=batch), args.timeout)
                queued += reply.queued
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
        print(json.dumps({"stored": len(episodes), "queued": queued}))
        return 0
    note = f" ({queued} queued in the outbox until Postgres is back)" if queued else ""
    print(f"stored {len(episodes)} episodes{note}")
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
    with _connect(args, RECALL) as client:
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
    with _connect(args, STATS) as client:
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
    with _connect(args, CONSOLIDATE) as client:
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
    with _connect(args, FACTS) as client:
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


def forget(args: argparse.Namespace) -> int:
    """Forget episodes by id or by a text they contain."""
    if bool(args.ids) == (args.match is not None):
        raise EmilyError("give episode ids or --match TEXT (not both)")
    body: dict[str, Any] = {"user": args.user, "dry_run": args.dry_run}
    body |= {"ids": args.ids} if args.ids else {"match": text_arg(args.match, "the match")}
    req = decode(ForgetRequest, body)
    with _connect(args, FORGET) as client:
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
    with _connect(args, CORRECT) as client:
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
        with _connect(args, EXPORT) as client:
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
    with _connect(args, EVENTS) as client:
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
    return 0


def rebuild(args: argparse.Namespace) -> int:
    """Rebuild the index and tier map from L3 and the log; say whether they matched."""
    with _connect(args, REBUILD) as client:
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


def _register_lifecycle(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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
    _register_lifecycle(verbs)
