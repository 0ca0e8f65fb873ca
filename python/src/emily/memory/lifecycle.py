"""Forgetting, correcting and exporting a user's episodes.

Postgres decides: each verb changes L3 (and the facts drawn from the episodes) in one
transaction that also appends its events to the log, then brings the projections in
line: the cache tiers (an L2 slot is wiped, not only freed), the in-process index and
the outbox. A crash between the two leaves only caches that disagree with L3, and the
start-up reconciliation (tiers' ``drop_missing``, the index's reconcile) drops them, so
a forgotten episode never comes back. A queued copy in the outbox is removed before the
transaction, since delivering it later would store the episode again, and the forget
leaves a mark that withholds a copy still queued elsewhere (cognition's outbox) when it
arrives (:mod:`emily.memory.forget_marks`).

Every verb is scoped: only ``user``'s episodes are read or changed, and another user's
id is reported like an absent one.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import uuid
from collections.abc import Collection, Iterable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from emily.bus.schemas.context import MEDIA_KEY, MEDIA_ORPHANED
from emily.bus.schemas.facts import Fact
from emily.bus.schemas.lifecycle import (
    CorrectReply,
    CorrectRequest,
    EventsReply,
    EventsRequest,
    ExportReply,
    ExportRequest,
    ForgetReply,
    ForgetRequest,
)
from emily.memory import events
from emily.memory.errors import MemoryServiceError
from emily.memory.forget_marks import Mark
from emily.memory.record import Record, normalize
from emily.memory.store import Conn

if TYPE_CHECKING:
    from emily.memory.core import Memory

log = logging.getLogger(__name__)


class NotFound(MemoryServiceError):
    """The episode does not exist for this user (or belongs to another one)."""


def _module(name: str) -> ModuleType | None:
    """``emily.memory.<name>`` when it is installed (facts and consolidation are optional
    parts of memory: without them there are no facts to drop or re-draw)."""
    try:
        return importlib.import_module(f"emily.memory.{name}")
    except ModuleNotFoundError:
        return None


def _has_table(conn: Conn, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def _drop_facts(conn: Conn, ids: list[uuid.UUID]) -> int:
    """Facts drawn only from ``ids`` are deleted in ``conn``'s transaction; returns how many."""
    if not ids or not _has_table(conn, "facts"):
        return 0
    facts = _module("facts")
    drop = getattr(facts, "drop_sources", None)
    if drop is None:
        raise MemoryServiceError(
            "the facts table exists but emily.memory.facts.drop_sources does not; nothing "
            "was forgotten: install a complete emily package"
        )
    return int(drop(conn, ids))


def _queued(memory: Memory, user: str) -> dict[uuid.UUID, Record]:
    """``user``'s episodes waiting in the outbox, by id."""
    return {
        r.id: r for _, r in memory.outbox.peek(max(memory.outbox.pending(), 1)) if r.user == user
    }


def _contains(text: str, match: str) -> bool:
    return match.casefold() in text.casefold()


def forget(memory: Memory, req: ForgetRequest) -> ForgetReply:
    """Forget ``req.ids`` or the episodes whose text contains ``req.match``, of ``req.user``.

    Each forgotten episode leaves L3, the facts drawn only from it, the cache tiers,
    the index and the outbox; its ``forget`` event carries its ``media_sha256`` (when
    its context has one) and ``media_orphaned`` (no remaining episode names that media).
    A dry run does the same in a transaction it rolls back, and touches nothing else.
    """
    # the outbox drainer must not deliver what is being forgotten, and no insert may
    # commit between this search and the mark (forget_marks: storing and forgetting)
    with memory._draining, memory.marks.forgetting():
        queued = _queued(memory, req.user)
        with memory.store.connection() as conn:
            if req.ids is not None:
                rows = conn.execute(
                    "SELECT id, context ->> %s FROM episodes WHERE id = ANY(%s) AND user_name = %s",
                    (MEDIA_KEY, list(dict.fromkeys(req.ids)), req.user),
                ).fetchall()
                wanted = list(dict.fromkeys(req.ids))
            else:
                assert req.match is not None  # the request model holds one of the two
                rows = conn.execute(
                    "SELECT id, context ->> %s FROM episodes WHERE user_name = %s "
                    "AND strpos(lower(text), lower(%s)) > 0 ORDER BY id",
                    (MEDIA_KEY, req.user, req.match),
                ).fetchall()
                wanted = [r[0] for r in rows] + sorted(
                    k for k, r in queued.items() if _contains(r.text, req.match)
                )
            media: dict[uuid.UUID, str | None] = {r[0]: r[1] for r in rows}
            for key in wanted:
                rec = queued.get(key)
                if key not in media and rec is not None:
                    sha = rec.context.get(MEDIA_KEY)
                    media[key] = sha if isinstance(sha, str) else None
            gone = [k for k in wanted if k in media]
            missing = [k for k in wanted if k not in media]
            if not req.dry_run:
                memory.outbox.remove([k for k in gone if k in queued])
            facts_removed, mark = _forget_in_l3(memory, conn, req, gone, media, queued)
        memory.marks.noted(mark)
    if not req.dry_run and gone:
        memory.tiers.remove(gone)
        if memory.indexer is not None:
            memory.indexer.index.remove(gone)
        memory.tiers.save()  # the saved access statistics no longer name them
        memory.events.notify()
    return ForgetReply(
        forgotten=gone, missing=missing, facts_removed=facts_removed, dry_run=req.dry_run
    )


def _forget_in_l3(
    memory: Memory,
    conn: Conn,
    req: ForgetRequest,
    gone: list[uuid.UUID],
    media: dict[uuid.UUID, str | None],
    queued: dict[uuid.UUID, Record],
) -> tuple[int, Mark | None]:
    """Delete ``gone`` and their facts, log it and leave the forget's mark
    (:mod:`emily.memory.forget_marks`), in one transaction (rolled back on a dry run);
    returns the facts removed and the mark, ``None`` on a dry run."""
    rollback = conn.transaction(force_rollback=req.dry_run)
    with rollback:
        mark = memory.marks.add(conn, req.user, match=req.match, ids=req.ids or ())
        conn.execute("DELETE FROM episodes WHERE id = ANY(%s) AND user_name = %s", (gone, req.user))
        removed = _drop_facts(conn, gone)
        queued_media = {r.context.get(MEDIA_KEY) for k, r in queued.items() if k not in media}
        still = queued_media | _named_media(conn, media.values())
        changes = [_forget_change(req.user, key, media.get(key), still) for key in gone]
        events.append(conn, changes)
    return removed, None if req.dry_run else mark


def _named_media(conn: Conn, shas: Iterable[object]) -> set[object]:
    """Which of the media hashes ``shas`` a stored episode still names."""
    wanted = sorted({s for s in shas if isinstance(s, str) and s})
    if not wanted:
        return set()
    rows = conn.execute(
        "SELECT DISTINCT context ->> %s FROM episodes WHERE context ->> %s = ANY(%s)",
        (MEDIA_KEY, MEDIA_KEY, wanted),
    ).fetchall()
    return {r[0] for r in rows}


def _forget_change(
    user: str, key: uuid.UUID, sha: object, still: Collection[object]
) -> events.Change:
    """The ``forget`` event of episode ``key``: with its media's hash ``sha`` (when it
    has one) and whether that media is now orphaned (named by nothing in ``still``)."""
    detail: dict[str, events.Scalar] = {}
    if isinstance(sha, str) and sha:
        detail = {MEDIA_KEY: sha, MEDIA_ORPHANED: sha not in still}
    return events.Change("forget", user=user, episode_id=key, detail=detail)


def forget_withheld(conn: Conn, withheld: Sequence[Record]) -> None:
    """Log a ``forget`` of each episode a forget mark withheld
    (:mod:`emily.memory.forget_marks`), in one transaction on ``conn``, with the detail a
    forget gives, so that perception deletes media whose only episode was withheld."""
    with conn.transaction():
        still = _named_media(conn, (r.context.get(MEDIA_KEY) for r in withheld))
        changes = [_forget_change(r.user, r.id, r.context.get(MEDIA_KEY), still) for r in withheld]
        events.append(conn, changes)


def _facts_of(conn: Conn, episode: uuid.UUID) -> list[Fact]:
    if not _has_table(conn, "facts"):
        return []
    facts = _module("facts")
    if facts is None:
        return []
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT f.id FROM facts f JOIN fact_sources s ON s.fact_id = f.id "
            "WHERE s.episode_id = %s ORDER BY f.valid_from, f.id",
            (episode,),
        ).fetchall()
    ]
    found: dict[uuid.UUID, Fact] = facts.get(conn, ids)
    return [found[i] for i in ids if i in found]


def correct(memory: Memory, req: CorrectRequest) -> CorrectReply:
    """Replace the text of ``req.id`` (``req.user``'s) with ``req.text``: re-embedded,
    updated in L3, every tier, the index and, for an episode still queued, the outbox.

    In the same transaction the facts drawn from the old text are unlinked (deleted
    where it was their only source) and the new text's are drawn
    (:func:`emily.memory.consolidate.reconsolidate`), so no reader ever sees the new
    text with the old facts.

    Raises
    ------
    NotFound
        ``req.user`` has no episode ``req.id``.
    """
    embedding = normalize(memory._embed([req.text])[0])
    with memory._draining:
        queued = _queued(memory, req.user).get(req.id)
        with memory.store.connection() as conn, conn.transaction():
            stored = memory.store.fetch([req.id], conn=conn).get(req.id)
            if stored is not None and stored.user != req.user:
                stored = None
            old = stored or queued
            if old is None:
                raise NotFound(f"user {req.user!r} has no episode {req.id}; check the id")
            rec = dataclasses.replace(old, text=req.text, embedding=embedding)
            if stored is not None:
                conn.execute(
                    "UPDATE episodes SET text = %s, embedding = %s WHERE id = %s",
                    (rec.text, np.asarray(rec.embedding, dtype=np.float32), rec.id),
                )
                _drop_facts(conn, [rec.id])
                redo = getattr(_module("consolidate"), "reconsolidate", None)
                if redo is not None and _has_table(conn, "facts"):
                    redo(memory, conn, [rec])
            events.append(conn, [events.Change("correct", user=req.user, episode_id=rec.id)])
            facts = _facts_of(conn, rec.id)
        if queued is not None:
            memory.outbox.remove([rec.id])
            memory.outbox.put([rec])
    memory.tiers.replace(rec)
    if memory.indexer is not None and stored is not None:
        memory.indexer.index.remove([rec.id])
        memory.indexer.add([rec])
    memory.events.notify()
    return CorrectReply(episode=rec.episode(), facts=facts)


def export(memory: Memory, req: ExportRequest) -> ExportReply:
    """One page of ``req.user``'s episodes in id order (UUIDv7: time order) after
    ``req.after``, and every fact of the user (current and superseded) on the first page."""
    with memory.store.connection() as conn:
        rows = conn.execute(
            "SELECT id FROM episodes WHERE user_name = %s AND (%s::uuid IS NULL OR id > %s) "
            "ORDER BY id LIMIT %s",
            (req.user, req.after, req.after, req.limit + 1),
        ).fetchall()
        ids = [r[0] for r in rows[: req.limit]]
        bodies = memory.store.fetch(ids, conn=conn)
        facts: list[Fact] = []
        module = _module("facts")
        if req.facts and req.after is None and module is not None and _has_table(conn, "facts"):
            fids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM facts WHERE user_name = %s ORDER BY valid_from, id",
                    (req.user,),
                ).fetchall()
            ]
            found: dict[uuid.UUID, Fact] = module.get(conn, fids)
            facts = [found[f] for f in fids if f in found]
    episodes = [bodies[i].episode() for i in ids if i in bodies]
    more = len(rows) > req.limit
    return ExportReply(episodes=episodes, facts=facts, next=ids[-1] if more and ids else None)


def events_page(memory: Memory, req: EventsRequest) -> EventsReply:
    """``memory/events``: the log after ``req.since`` and, of ``req.media``, the hashes
    an episode still names (in L3, of any user, or queued in the outbox)."""
    asked = set(req.media)
    named: set[object] = set()
    if asked:  # the outbox before L3: an episode delivered in between is then in L3
        named = {r.context.get(MEDIA_KEY) for _, r in memory.outbox.peek(memory.outbox.pending())}
    with memory.store.connection() as conn:
        page = events.read(conn, req.since, req.limit)
        if not asked:
            return page
        rows = conn.execute(
            "SELECT DISTINCT context ->> %s FROM episodes WHERE context ->> %s = ANY(%s)",
            (MEDIA_KEY, MEDIA_KEY, sorted(asked)),
        ).fetchall()
    named |= {r[0] for r in rows}
    return page.model_copy(
        update={"named": sorted(asked & {n for n in named if isinstance(n, str)})}
    )


def episode_ids(memory: Memory, user: str) -> Sequence[uuid.UUID]:
    """Every episode id of ``user`` in L3 (tests and small tools)."""
    with memory.store.connection() as conn:
        rows = conn.execute(
            "SELECT id FROM episodes WHERE user_name = %s ORDER BY id", (user,)
        ).fetchall()
    return [r[0] for r in rows]
