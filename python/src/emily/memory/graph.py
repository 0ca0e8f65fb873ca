"""The entity graph: one node per name a user's facts mention, one edge per fact.

``(sister, name, Ana)`` and ``(sister, lives_in, Paris)`` make the path
``ana - sister - paris``, so a question naming Ana reaches the fact about Paris. The
neighbourhood of the entities a text names is a recursive CTE over ``edges``. The
speaker (``me``) is never walked through: every fact about the speaker touches it, so
walking through it would make every such fact a neighbour of every other.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import psycopg

from emily.memory.extract import ME

Conn = psycopg.Connection[Any]
#: Longest entity name a text is searched for, in words.
MAX_NAME_WORDS = 3
#: Default hops from a named entity.
DEPTH = 2

_WORD = re.compile(r"[\w@.+-]+")


def entity_name(term: str) -> str:
    """The node name of a subject or value: case-folded, single-spaced."""
    return " ".join(term.casefold().split())


def names_in(text: str) -> list[str]:
    """Every run of 1..:data:`MAX_NAME_WORDS` words of ``text`` (case-folded, a
    possessive ``'s`` dropped): the candidate entity names it may mention."""
    words = [w.strip(".-") for w in _WORD.findall(text.casefold().replace("'s", " "))]
    words = [w for w in words if w]
    out = {
        " ".join(words[i : i + n])
        for n in range(1, MAX_NAME_WORDS + 1)
        for i in range(len(words) - n + 1)
    }
    out.discard(ME)
    return sorted(out)


def _entity(conn: Conn, user: str, name: str) -> int:
    row = conn.execute(
        "INSERT INTO entities (user_name, name) VALUES (%s, %s) "
        "ON CONFLICT (user_name, name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        (user, name),
    ).fetchone()
    assert row is not None
    return int(row[0])


def link(
    conn: Conn, user: str, fact_id: uuid.UUID, subject: str, relation: str, value: str
) -> None:
    """Add the edge ``subject -relation-> value`` of fact ``fact_id`` (nodes made as needed)."""
    src = _entity(conn, user, entity_name(subject))
    dst = _entity(conn, user, entity_name(value))
    conn.execute(
        "INSERT INTO edges (fact_id, src, dst, relation) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (fact_id) DO NOTHING",
        (fact_id, src, dst, relation),
    )


_WALK = """
WITH RECURSIVE walk(id, depth) AS (
    SELECT id, 0 FROM entities WHERE user_name = %(user)s AND name = ANY(%(names)s)
    UNION
    SELECT CASE WHEN e.src = w.id THEN e.dst ELSE e.src END, w.depth + 1
    FROM walk w
    JOIN edges e ON e.src = w.id OR e.dst = w.id
    WHERE w.depth < %(depth)s
      AND (SELECT name FROM entities WHERE id = w.id) <> %(me)s
), near AS (
    SELECT id, min(depth) AS depth FROM walk GROUP BY id
)
SELECT f.id, min(n.depth) AS depth, max(f.last_seen) AS seen
FROM near n
JOIN edges e ON e.src = n.id OR e.dst = n.id
JOIN facts f ON f.id = e.fact_id
WHERE (SELECT name FROM entities WHERE id = n.id) <> %(me)s
  AND (%(agent)s::text IS NULL OR f.agent_name = %(agent)s)
  AND (%(history)s OR f.valid_to IS NULL)
GROUP BY f.id
ORDER BY depth, seen DESC
LIMIT %(limit)s
"""


def neighbourhood(
    conn: Conn,
    user: str,
    text: str,
    *,
    limit: int,
    agent: str | None = None,
    history: bool = False,
    depth: int = DEPTH,
) -> list[tuple[uuid.UUID, int]]:
    """Facts of ``user`` on edges within ``depth`` hops of an entity ``text`` names.

    Returns up to ``limit`` ``(fact id, hops)`` pairs, nearest first (then most recently
    seen); hops is 0 for a fact whose edge touches a named entity. Superseded facts only
    with ``history``.
    """
    names = names_in(text)
    if not names:
        return []
    rows = conn.execute(
        _WALK,
        {
            "user": user,
            "names": names,
            "depth": depth,
            "me": ME,
            "agent": agent,
            "history": history,
            "limit": limit,
        },
    ).fetchall()
    return [(row[0], int(row[1])) for row in rows]


def graph_episodes(conn: Conn, user: str, text: str, limit: int) -> list[uuid.UUID]:
    """Episodes of ``user`` that facts near the entities ``text`` names were drawn from.

    For hybrid recall: the source episodes of :func:`neighbourhood`'s facts (superseded
    ones included, since what was said then is still what was said), nearest first,
    each once, at most ``limit``.
    """
    facts = neighbourhood(conn, user, text, limit=max(limit, 1) * 4, history=True)
    if not facts:
        return []
    rows = conn.execute(
        "SELECT s.episode_id, f.ord FROM fact_sources s "
        "JOIN unnest(%s::uuid[]) WITH ORDINALITY AS f(id, ord) ON f.id = s.fact_id "
        "ORDER BY f.ord, s.episode_id DESC",
        ([f for f, _ in facts],),
    ).fetchall()
    out: list[uuid.UUID] = []
    for episode_id, _ in rows:
        if episode_id not in out:
            out.append(episode_id)
            if len(out) == limit:
                break
    return out


def prune(conn: Conn, user: str | None = None) -> int:
    """Delete entities no edge touches any more (of ``user``, or of all); returns how many."""
    cur = conn.execute(
        "DELETE FROM entities n WHERE (%(user)s::text IS NULL OR n.user_name = %(user)s) "
        "AND NOT EXISTS (SELECT 1 FROM edges e WHERE e.src = n.id OR e.dst = n.id)",
        {"user": user},
    )
    return cur.rowcount
