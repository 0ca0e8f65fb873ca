"""The fact store: facts with validity intervals, their sources, and the hybrid query.

A new value for a user's ``(subject, relation)`` supersedes the current one (its
``valid_to`` is set; it stays as history); the same value again reinforces it (``count``
and ``last_seen``). Multi-valued relations (allergies, pets; see
:data:`~emily.memory.extract.MULTI`) hold one current fact per value. Every function
works in the caller's transaction, so a consolidation pass or a forget commits its
facts together with the rest of its change.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import psycopg

from emily.bus.schemas.facts import Fact, FactsReply, FactsRequest
from emily.embed import Embedder
from emily.ids import uuid7
from emily.memory import graph
from emily.memory.errors import StoreUnavailable
from emily.memory.extract import ME, Triple
from emily.memory.record import Vector
from emily.memory.store import PgStore

Conn = psycopg.Connection[Any]
Extractor = Literal["patterns", "llm"]
#: Reciprocal-rank constant: a list's rank r adds 1 / (RRF_K + r) to a fact's score.
RRF_K = 60
#: Words a relation is also found by in full-text search ("called" finds a name).
GLOSS = {
    "name": "name named called call",
    "lives_in": "live lives living home city town moved where",
    "works_at": "work works working job employer company employed",
    "occupation": "job work profession occupation",
    "age": "age old years",
    "allergic_to": "allergic allergy allergies",
    "has": "have has own pet",
    "born_in": "born birthplace",
    "from": "from origin country",
    "speaks": "speak language",
    "spouse": "married spouse wife husband",
    "hobby": "hobby fun pastime free time",
    "plays": "play plays instrument sport",
    "learning": "learn learning study language",
    "drives": "drive car",
    "birthday": "birthday born month date",
}
#: Words every ``favourite_<thing>`` relation is also found by.
FAVOURITE = "favourite favorite like best most prefer love"
#: Other words for subjects and favourite things ("dish" finds the favourite food).
SYNONYMS = {
    "colour": "color",
    "food": "dish meal eat cuisine",
    "drink": "beverage",
    "film": "movie",
    "movie": "film",
    "book": "novel read",
    "team": "club support",
    "neighbour": "neighbor next door",
    "neighbor": "neighbour next door",
    "boss": "manager",
    "partner": "spouse",
    "mother": "mom mum",
    "father": "dad",
    "doctor": "gp physician",
}
_COLS = (
    "f.id, f.user_name, f.agent_name, f.subject, f.relation, f.value, f.valid_from, "
    "f.valid_to, f.count, f.last_seen, f.extractor, "
    "ARRAY(SELECT s.episode_id FROM fact_sources s WHERE s.fact_id = f.id ORDER BY 1)"
)


def fact_text(subject: str, relation: str, value: str) -> str:
    """The words a fact is embedded and searched by: ``my dog name Rex``."""
    who = "I" if subject == ME else f"my {subject}"
    return f"{who} {relation.replace('_', ' ')} {value}"


def _doc(subject: str, relation: str, value: str) -> str:
    words = [fact_text(subject, relation, value), GLOSS.get(relation, "")]
    words += [SYNONYMS.get(w, "") for w in subject.split()]
    if relation.startswith("favourite_"):
        thing = relation.removeprefix("favourite_").split("_")
        words += [FAVOURITE, *(SYNONYMS.get(w, "") for w in thing)]
    return " ".join(w for w in words if w)


@dataclass(frozen=True)
class Applied:
    """What :func:`apply` did: ``added``, ``reinforced`` or ``superseded`` (a new fact
    replaced ``old``), and the fact now holding the value."""

    outcome: Literal["added", "reinforced", "superseded"]
    fact_id: uuid.UUID
    old: uuid.UUID | None = None


def _source(conn: Conn, fact_id: uuid.UUID, episode_id: uuid.UUID) -> None:
    conn.execute(
        "INSERT INTO fact_sources (fact_id, episode_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (fact_id, episode_id),
    )


def apply(
    conn: Conn,
    *,
    user: str,
    agent: str | None,
    triple: Triple,
    episode_id: uuid.UUID,
    at: datetime,
    embedding: Vector,
    extractor: Extractor = "patterns",
) -> Applied:
    """Record that ``user`` stated ``triple`` in episode ``episode_id`` at time ``at``.

    ``embedding`` is the unit MiniLM vector ``(384,)`` of :func:`fact_text`. A statement
    older than the current fact it contradicts (consolidated late) is kept as history
    ending where the current one begins, and does not supersede it.
    """
    value_key = triple.value.casefold() if triple.multi else ""
    row = conn.execute(
        "SELECT id, value, valid_from FROM facts WHERE user_name = %s "
        "AND agent_name IS NOT DISTINCT FROM %s AND subject = %s AND relation = %s "
        "AND valid_to IS NULL AND (CASE WHEN multi THEN lower(value) ELSE '' END) = %s "
        "FOR UPDATE",
        (user, agent, triple.subject, triple.relation, value_key),
    ).fetchone()
    if row is not None and str(row[1]).casefold() == triple.value.casefold():
        conn.execute(
            "UPDATE facts SET count = count + 1, last_seen = greatest(last_seen, %s) WHERE id = %s",
            (at, row[0]),
        )
        _source(conn, row[0], episode_id)
        return Applied("reinforced", row[0])
    valid_to = None
    old = None
    if row is not None:
        if at >= row[2]:
            old = row[0]
            conn.execute("UPDATE facts SET valid_to = %s WHERE id = %s", (at, old))
        else:
            valid_to = row[2]
    fact_id = uuid7()
    conn.execute(
        "INSERT INTO facts (id, user_name, agent_name, subject, relation, value, multi, "
        "valid_from, valid_to, last_seen, extractor, supersedes, doc, embedding) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            fact_id,
            user,
            agent,
            triple.subject,
            triple.relation,
            triple.value,
            triple.multi,
            at,
            valid_to,
            at,
            extractor,
            old,
            _doc(triple.subject, triple.relation, triple.value),
            np.asarray(embedding, dtype=np.float32),
        ),
    )
    _source(conn, fact_id, episode_id)
    graph.link(conn, user, fact_id, triple.subject, triple.relation, triple.value)
    return Applied("superseded" if old else "added", fact_id, old)


def _fact(row: tuple[Any, ...], score: float | None = None) -> Fact:
    return Fact(
        id=row[0],
        user=row[1],
        agent=row[2],
        subject=row[3],
        relation=row[4],
        value=row[5],
        valid_from=row[6],
        valid_to=row[7],
        count=row[8],
        last_seen=row[9],
        extractor=row[10],
        sources=list(row[11]),
        score=score,
    )


def get(conn: Conn, ids: list[uuid.UUID]) -> dict[uuid.UUID, Fact]:
    """Facts by id (absent ids are left out)."""
    rows = conn.execute(f"SELECT {_COLS} FROM facts f WHERE f.id = ANY(%s)", (ids,)).fetchall()
    return {row[0]: _fact(row) for row in rows}


_SCOPE = (
    "f.user_name = %(user)s AND (%(agent)s::text IS NULL OR f.agent_name = %(agent)s) "
    "AND (%(history)s OR f.valid_to IS NULL) "
    "AND (%(subject)s::text IS NULL OR f.subject = %(subject)s) "
    "AND (%(relation)s::text IS NULL OR f.relation = %(relation)s)"
)
# words of the question joined by OR: "what is my dog called" matches "dog" or "call"
_TSQUERY = "NULLIF(replace(plainto_tsquery('english', %(text)s)::text, ' & ', ' | '), '')::tsquery"


def query(conn: Conn, req: FactsRequest, embedding: Vector | None) -> list[Fact]:
    """``req``'s facts, best first, each with its fused score.

    With ``req.text``: three rankings of the user's facts (cosine to ``embedding``, the
    unit ``(384,)`` vector of the text; full-text match; hops in the entity graph from
    the entities the text names) fused by reciprocal rank; facts whose value the text
    names come after the others, and the values of one subject and relation are
    together, current and newest first. Without text: the exact
    ``subject``/``relation`` matches, newest first.
    """
    params: dict[str, Any] = {
        "user": req.user,
        "agent": req.agent,
        "history": req.history,
        "subject": req.subject,
        "relation": req.relation,
        "text": req.text,
        "n": max(4 * req.k, 20),
    }
    if req.text is None:
        rows = conn.execute(
            f"SELECT {_COLS} FROM facts f WHERE {_SCOPE} "
            "ORDER BY f.valid_to IS NOT NULL, f.valid_from DESC LIMIT %(n)s",
            params,
        ).fetchall()
        return [_fact(row) for row in rows[: req.k]]
    rankings: list[list[uuid.UUID]] = []
    if embedding is not None:
        params["q"] = np.asarray(embedding, dtype=np.float32)
        rows = conn.execute(
            f"SELECT f.id FROM facts f WHERE {_SCOPE} ORDER BY f.embedding <=> %(q)s LIMIT %(n)s",
            params,
        ).fetchall()
        rankings.append([r[0] for r in rows])
    rows = conn.execute(
        f"SELECT f.id FROM facts f WHERE {_SCOPE} AND f.tsv @@ {_TSQUERY} "
        f"ORDER BY ts_rank(f.tsv, {_TSQUERY}) DESC, f.valid_from DESC LIMIT %(n)s",
        params,
    ).fetchall()
    rankings.append([r[0] for r in rows])
    near = graph.neighbourhood(
        conn, req.user, req.text, limit=params["n"], agent=req.agent, history=req.history
    )
    rankings.append([f for f, _ in near])
    fused: dict[uuid.UUID, float] = {}
    for ranking in rankings:
        for rank, fact_id in enumerate(ranking):
            fused[fact_id] = fused.get(fact_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    best = sorted(fused, key=lambda f: -fused[f])
    found = get(conn, best)
    # a fact whose value the text already names ("Ana" in "where does Ana live") is
    # rarely what it asks for: it ranks after the others, keeping its score
    named = set(graph.names_in(req.text))
    best.sort(key=lambda f: f in found and graph.entity_name(found[f].value) in named)
    best = _latest_first(best, found)
    # the graph walk is not filtered by subject/relation: keep only what the scope allows
    out = [found[f].model_copy(update={"score": fused[f]}) for f in best if f in found]
    if req.subject is not None:
        out = [f for f in out if f.subject == req.subject]
    if req.relation is not None:
        out = [f for f in out if f.relation == req.relation]
    return out[: req.k]


def answer(store: PgStore, embedder: Embedder | None, req: FactsRequest) -> FactsReply:
    """``memory/facts``: :func:`query` on a pooled connection, the text embedded first.

    Raises
    ------
    StoreUnavailable
        Postgres is unreachable, or a text query came with no embedding model loaded.
    """
    start = time.perf_counter()
    vector = None
    if req.text is not None:
        if embedder is None:
            raise StoreUnavailable("no embedding model is loaded; query facts by subject")
        vector = embedder.embed([req.text])[0]
    with store.connection() as conn:
        found = query(conn, req, vector)
    return FactsReply(facts=found, took_ms=(time.perf_counter() - start) * 1000)


def _latest_first(ranked: list[uuid.UUID], found: dict[uuid.UUID, Fact]) -> list[uuid.UUID]:
    """``ranked`` with the facts of one subject and relation together, where the first
    of them ranks, newest first: of two current allergies the one said last leads."""
    groups: dict[tuple[str, str], list[Fact]] = {}
    for f in ranked:
        if f in found:
            groups.setdefault((found[f].subject, found[f].relation), []).append(found[f])
    out: list[uuid.UUID] = []
    for members in groups.values():
        members.sort(key=lambda fact: (fact.valid_to is not None, -fact.valid_from.timestamp()))
        out += [fact.id for fact in members]
    return out


def drop_sources(conn: Conn, episode_ids: list[uuid.UUID]) -> int:
    """Unlink forgotten episodes from their facts; returns how many facts were deleted.

    A fact whose every source is forgotten is deleted (with its edge). When it had
    superseded an older value, that value's validity is stretched over the gap, so
    forgetting "my dog is now called Max" makes Rex the current name again. Facts that
    keep another source lose one count per forgotten source. Runs in the caller's
    transaction (a forget commits the episode and its facts together).
    """
    if not episode_ids:
        return 0
    linked = conn.execute(
        "DELETE FROM fact_sources WHERE episode_id = ANY(%s) RETURNING fact_id",
        (episode_ids,),
    ).fetchall()
    conn.execute("DELETE FROM consolidated WHERE episode_id = ANY(%s)", (episode_ids,))
    lost: dict[uuid.UUID, int] = {}
    for (fact_id,) in linked:
        lost[fact_id] = lost.get(fact_id, 0) + 1
    if not lost:
        return 0
    orphans = conn.execute(
        "SELECT id, user_name FROM facts f WHERE id = ANY(%s) "
        "AND NOT EXISTS (SELECT 1 FROM fact_sources s WHERE s.fact_id = f.id) "
        "ORDER BY valid_from DESC",
        (list(lost),),
    ).fetchall()
    for fact_id, _ in orphans:
        _unchain(conn, fact_id)
    kept = [(n, f) for f, n in lost.items() if f not in {o[0] for o in orphans}]
    for n, fact_id in kept:
        conn.execute("UPDATE facts SET count = greatest(1, count - %s) WHERE id = %s", (n, fact_id))
    for user in {o[1] for o in orphans}:
        graph.prune(conn, user)
    return len(orphans)


def _unchain(conn: Conn, fact_id: uuid.UUID) -> None:
    """Delete ``fact_id``, joining its predecessor to its successor (or making the
    predecessor current again)."""
    after = conn.execute("SELECT id FROM facts WHERE supersedes = %s", (fact_id,)).fetchall()
    row = conn.execute(
        "DELETE FROM facts WHERE id = %s RETURNING supersedes, valid_to", (fact_id,)
    ).fetchone()
    if row is None or row[0] is None:
        return
    before, valid_to = row
    conn.execute("UPDATE facts SET valid_to = %s WHERE id = %s", (valid_to, before))
    for (successor,) in after:
        conn.execute("UPDATE facts SET supersedes = %s WHERE id = %s", (before, successor))
