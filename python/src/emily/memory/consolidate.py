"""Consolidation: user statements become facts, and repeated statements merge.

A pass reads the user statements (``role = user``, ``act = statement``) no pass has read
yet, oldest first. A statement whose embedding is within ``merge_threshold`` cosine of
an earlier consolidated statement of the same user and agent, and stating no fact the
earlier one does not, is merged into it (the earlier one gets ``repeats + 1`` and
``last_seen``; the newer row is deleted), so saying the same thing twice does not fill
memory. The facts of every statement (the
deterministic extractor's, and the language model's when one is configured) are applied
to the fact store (:func:`emily.memory.facts.apply`): added, reinforced or superseding.
The model is asked before the pass's transaction opens, so a slow model never holds
row locks; the transaction then re-locks the rows and skips any another pass took.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from emily.bus.schemas.facts import ConsolidateReply
from emily.memory import events, facts
from emily.memory.errors import StoreUnavailable
from emily.memory.extract import Triple, extract
from emily.memory.llm_extract import ExtractionFailed, LlmExtractor
from emily.memory.record import Record
from emily.memory.store import Conn

if TYPE_CHECKING:
    from emily.memory.core import Memory

log = logging.getLogger(__name__)

_PENDING = (
    "SELECT e.id, e.ts, e.text, e.user_name, e.agent_name FROM episodes e "
    "WHERE e.role = 'user' AND e.act = 'statement' "
    "AND NOT EXISTS (SELECT 1 FROM consolidated c WHERE c.episode_id = e.id) "
    "AND (%(user)s::text IS NULL OR e.user_name = %(user)s) "
    "AND (%(ids)s::uuid[] IS NULL OR e.id = ANY(%(ids)s)) "
    "ORDER BY e.ts, e.id LIMIT %(limit)s"
)
# exact, not the HNSW index: the candidates are one user's consolidated statements, and
# an approximate scan under that filter could miss the one duplicate
_NEAREST = (
    "SELECT e.id, 1 - (e.embedding <=> o.embedding), e.text FROM episodes e "
    "JOIN consolidated c ON c.episode_id = e.id, episodes o "
    "WHERE o.id = %(id)s AND e.id <> o.id AND e.user_name = o.user_name "
    "AND e.agent_name IS NOT DISTINCT FROM o.agent_name "
    "AND e.role = 'user' AND e.act = 'statement' "
    "ORDER BY (e.embedding <=> o.embedding) + 0 LIMIT 1"
)


@dataclass
class _Statement:
    id: uuid.UUID
    ts: Any
    text: str
    user: str
    agent: str | None
    triples: list[tuple[Triple, facts.Extractor]] = field(default_factory=list)


@dataclass
class Consolidator:
    """Consolidation passes over ``store``.

    Attributes
    ----------
    memory : the memory whose statements are consolidated (its L3 store holds the facts;
        its embedder embeds them; merged episodes leave its cache tiers and index).
    merge_threshold : cosine at or above which a statement merges into an earlier one.
    llm : the language-model extractor, or ``None`` for patterns only.
    """

    memory: Memory
    merge_threshold: float = 0.95
    llm: LlmExtractor | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _triples(self, st: _Statement) -> None:
        st.triples = [(t, "patterns") for t in extract(st.text)]
        if self.llm is None:
            return
        try:
            found = self.llm.extract(st.text)
        except ExtractionFailed as exc:
            log.warning("episode %s: facts from patterns only (%s)", st.id, exc)
            return
        keys = {t.key() for t, _ in st.triples}
        st.triples += [(t, "llm") for t in found if t.key() not in keys]

    def run(
        self, user: str | None = None, limit: int = 1000, ids: Sequence[uuid.UUID] | None = None
    ) -> ConsolidateReply:
        """One pass over up to ``limit`` unconsolidated statements (of ``user``, or of
        every user; only ``ids`` when given).

        Raises
        ------
        StoreUnavailable
            Postgres is unreachable; nothing was changed.
        """
        start = time.perf_counter()
        with self._lock, self.memory.store.connection() as conn:
            params = {"user": user, "limit": limit, "ids": list(ids) if ids else None}
            pending = [_Statement(*row) for row in conn.execute(_PENDING, params).fetchall()]
            for st in pending:
                self._triples(st)
            vector_of = _embed(self.memory, [t for st in pending for t, _ in st.triples])
            with conn.transaction():
                reply, gone = self._apply(conn, pending, vector_of)
        if gone:
            self.memory.tiers.remove(gone)
            if self.memory.indexer is not None:
                self.memory.indexer.index.remove(gone)
        self.memory.events.notify()
        return reply.model_copy(update={"took_ms": (time.perf_counter() - start) * 1000})

    def _apply(
        self, conn: Conn, pending: list[_Statement], vector_of: dict[str, np.ndarray]
    ) -> tuple[ConsolidateReply, list[uuid.UUID]]:
        locked = {
            row[0]
            for row in conn.execute(
                "SELECT id FROM episodes e WHERE id = ANY(%s) AND NOT EXISTS "
                "(SELECT 1 FROM consolidated c WHERE c.episode_id = e.id) "
                "FOR UPDATE SKIP LOCKED",
                ([st.id for st in pending],),
            ).fetchall()
        }
        counts = {"added": 0, "superseded": 0, "reinforced": 0}
        changes: list[events.Change] = []
        gone: list[uuid.UUID] = []
        done = 0
        for st in pending:
            if st.id not in locked:
                continue
            done += 1
            source = st.id
            near = conn.execute(_NEAREST, {"id": st.id}).fetchone()
            if near is not None and _repeats(st, float(near[1]), near[2], self.merge_threshold):
                source = near[0]
                conn.execute(
                    "UPDATE episodes SET repeats = repeats + (SELECT repeats FROM episodes "
                    "WHERE id = %(new)s), last_seen = greatest(coalesce(last_seen, ts), %(ts)s) "
                    "WHERE id = %(old)s",
                    {"new": st.id, "old": source, "ts": st.ts},
                )
                facts.drop_sources(conn, [st.id])
                conn.execute("DELETE FROM episodes WHERE id = %s", (st.id,))
                gone.append(st.id)
                changes.append(events.Change("merge", st.user, st.id, detail={"into": str(source)}))
            else:
                conn.execute("INSERT INTO consolidated (episode_id) VALUES (%s)", (st.id,))
            for triple, how in st.triples:
                text = facts.fact_text(triple.subject, triple.relation, triple.value)
                got = facts.apply(
                    conn,
                    user=st.user,
                    agent=st.agent,
                    triple=triple,
                    episode_id=source,
                    at=st.ts,
                    embedding=vector_of[text],
                    extractor=how,
                )
                counts[got.outcome] += 1
                if got.outcome != "reinforced":
                    changes.append(events.Change("fact", st.user, source, got.fact_id))
                if got.old is not None:
                    detail: dict[str, events.Scalar] = {"by": str(got.fact_id)}
                    changes.append(events.Change("supersede", st.user, source, got.old, detail))
        events.append(conn, changes)
        reply = ConsolidateReply(
            episodes=done,
            facts_added=counts["added"] + counts["superseded"],
            facts_superseded=counts["superseded"],
            facts_reinforced=counts["reinforced"],
            merged=len(gone),
            took_ms=0.0,
        )
        return reply, gone

    def start(self, interval_s: float) -> None:
        """Run a pass every ``interval_s`` seconds in a background thread."""

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    reply = self.run()
                    if reply.episodes:
                        log.info("consolidated %d statements: %s", reply.episodes, reply)
                except StoreUnavailable as exc:
                    log.warning("consolidation skipped: %s", exc)
                except Exception:  # keep the thread alive
                    log.exception("consolidation failed; retrying next interval")

        self._thread = threading.Thread(target=loop, name="memory-consolidate", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the background thread (a pass under way finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)


def _repeats(st: _Statement, cosine: float, earlier: str, threshold: float) -> bool:
    """Whether ``st`` repeats the earlier statement ``earlier``: as close as
    ``threshold`` and stating no fact the earlier one does not ("my dog is called Max"
    is close to "my dog is called Rex", and is news)."""
    if cosine < threshold:
        return False
    said = {t.key() for t in extract(earlier)}
    return all(t.key() in said for t, how in st.triples if how == "patterns")


def _embed(memory: Memory, triples: Sequence[Triple]) -> dict[str, np.ndarray]:
    """Unit MiniLM vectors ``(384,)`` of the triples' :func:`~facts.fact_text`, by text."""
    texts = sorted({facts.fact_text(t.subject, t.relation, t.value) for t in triples})
    if not texts:
        return {}
    if memory.embedder is None:
        raise StoreUnavailable("no embedding model is loaded; facts cannot be embedded")
    return dict(zip(texts, memory.embedder.embed(texts), strict=True))


def reconsolidate(memory: Memory, conn: Conn, records: Sequence[Record]) -> int:
    """Draw the facts of corrected episodes again, in ``conn``'s open transaction.

    The caller has unlinked their old facts (:func:`~facts.drop_sources`). Only user
    statements give facts; the deterministic extractor alone runs here, since the
    language model is too slow to wait for inside a transaction. Returns facts applied.
    """
    statements = [r for r in records if r.role == "user" and r.act == "statement"]
    found = [(r, extract(r.text)) for r in statements]
    vector_of = _embed(memory, [t for _, ts in found for t in ts])
    changes: list[events.Change] = []
    applied = 0
    for rec, triples in found:
        conn.execute(
            "INSERT INTO consolidated (episode_id) VALUES (%s) ON CONFLICT DO NOTHING", (rec.id,)
        )
        for triple in triples:
            got = facts.apply(
                conn,
                user=rec.user,
                agent=rec.agent,
                triple=triple,
                episode_id=rec.id,
                at=rec.ts,
                embedding=vector_of[facts.fact_text(triple.subject, triple.relation, triple.value)],
            )
            applied += 1
            if got.outcome != "reinforced":
                changes.append(events.Change("fact", rec.user, rec.id, got.fact_id))
            if got.old is not None:
                detail: dict[str, events.Scalar] = {"by": str(got.fact_id)}
                changes.append(events.Change("supersede", rec.user, rec.id, got.old, detail))
    events.append(conn, changes)
    return applied
