"""The ranked reads of L3: k nearest episodes by HNSW, and the full-text query.

A k-NN search is one prepared statement that can return the bodies too, with a
per-query ``hnsw.ef_search``; filtered searches switch on
``hnsw.iterative_scan = relaxed_order`` so a selective filter still returns k rows.
These settings are session settings of the pooled connection, sent only when they
differ from what that connection last had, so a search is usually one round trip.
"""

from __future__ import annotations

import re
import weakref
from typing import Any

import psycopg
from psycopg import sql

from emily.bus.schemas.memory import RecallFilters
from emily.memory.config import MemoryConfig
from emily.memory.filters import where_clause
from emily.memory.hnsw import distance
from emily.memory.pgpool import Conn, PgPool
from emily.memory.record import Vector
from emily.memory.rows import COLUMNS, column_list

#: quotes, a leading minus or "or": the text uses web-search syntax, kept as written
_WEBSEARCH_SYNTAX = re.compile(r'"|(?:^|\s)-\S|\bor\b', re.IGNORECASE)
_SET_GUCS = (
    "SELECT set_config('hnsw.ef_search', %s, false), "
    "set_config('hnsw.iterative_scan', %s, false), "
    "set_config('hnsw.max_scan_tuples', %s, false)"
)


class NearestSearch:
    """k-NN over ``episodes`` with cached statements and per-connection settings.

    Parameters
    ----------
    pool : the store's pool; a search without a caller's connection borrows one.
    cfg : storage type, default ``ef_search`` and ``max_scan_tuples``.
    """

    def __init__(self, pool: PgPool, cfg: MemoryConfig) -> None:
        self.pool = pool
        self.cfg = cfg
        # search settings each pooled connection holds; forgotten with the connection
        self._gucs: weakref.WeakKeyDictionary[Conn, tuple[str, str, str]] = (
            weakref.WeakKeyDictionary()
        )
        self._stmts: dict[tuple[str, bool, bool], sql.Composed] = {}

    def rows(
        self,
        query: Vector,
        k: int,
        filters: RecallFilters | None,
        ef_search: int | None,
        exact: bool,
        conn: Conn | None,
        *,
        bodies: bool,
        user: str | None = None,
        agent: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """The ``k`` rows nearest to ``query`` ``(384,)``, nearest first: ``(id, distance)``,
        or with ``bodies`` every column of :data:`~emily.memory.rows.COLUMNS`, then the
        cosine distance. ``exact=True`` forces a sequential scan."""
        where, params = where_clause(filters or RecallFilters(), user, agent)
        params.update(q=query, k=k)
        filtered = bool(params.keys() - {"q", "k"})
        key = (where.as_string(None) if filtered else "", exact, bodies)
        stmt = self._stmts.get(key)
        if stmt is None:
            cols = column_list(len(COLUMNS) if bodies else 1)
            stmt = sql.SQL(
                "WITH c AS MATERIALIZED (SELECT {cols}, {dist} AS d FROM episodes {where} "
                "ORDER BY {dist} LIMIT %(k)s) SELECT {cols}, d FROM c ORDER BY d"
            ).format(cols=cols, dist=distance(self.cfg), where=where)
            self._stmts[key] = stmt
        ef = ef_search or self.cfg.ef_search
        with self.pool.session(conn) as c:
            if exact:
                with c.pipeline(), c.transaction():
                    c.execute("SET LOCAL enable_indexscan = off")
                    cur = c.execute(stmt, params, prepare=True, binary=bodies)
                return cur.fetchall()
            gucs = (
                str(max(ef, k)),
                "relaxed_order" if filtered else "off",
                str(self.cfg.max_scan_tuples),
            )
            # inside a caller's transaction a rollback would undo the settings: send, no cache
            idle = c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            try:
                if not idle or self._gucs.get(c) != gucs:
                    self._gucs.pop(c, None)
                    c.execute(_SET_GUCS, gucs)
                    if idle:
                        self._gucs[c] = gucs
                return c.execute(stmt, params, prepare=True, binary=bodies).fetchall()
            except BaseException:
                self._gucs.pop(c, None)
                raise


def text_query(
    text: str, k: int, filters: RecallFilters | None, user: str, agent: str | None
) -> tuple[sql.Composed, dict[str, Any]]:
    """The full-text search for ``text`` in the scope and its parameters: the ``k``
    episodes whose ``tsv`` matches ``websearch_to_tsquery('english', text)``, best
    ``ts_rank_cd`` first, as rows ``(id, rank)``. A text with no searchable word matches
    nothing.

    A plain text (no quotes, ``-`` or ``or``) matches episodes holding any of its
    words, not only all of them: "who told me about Wojciechowski" must find the
    episode that names Wojciechowski without "told".
    """
    where, params = where_clause(filters or RecallFilters(), user, agent)
    params.update(text=text, k=k)
    query = "websearch_to_tsquery('english', %(text)s)"
    if not _WEBSEARCH_SYNTAX.search(text):
        query = f"replace({query}::text, ' & ', ' | ')::tsquery"
    stmt = sql.SQL(
        "SELECT id, ts_rank_cd(tsv, q) AS r FROM episodes, (SELECT {query} AS q) AS s "
        "{where} AND tsv @@ q ORDER BY r DESC, id LIMIT %(k)s"
    ).format(query=sql.SQL(query), where=where)
    return stmt, params
