"""Tier L3: Postgres + pgvector, the durable truth.

:class:`PgStore` is the ``episodes`` table as the rest of memory uses it. When it opens,
it applies the schema's migrations (:mod:`emily.memory.migrate`) and brings the HNSW
index in line with the configuration (:mod:`emily.memory.hnsw`); then it serves through
a pool of connections (:mod:`emily.memory.pgpool`). The write path is
:mod:`emily.memory.ingest`, the ranked reads (k-NN and full text) are
:mod:`emily.memory.search`, and the reads by id are here.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager

import psycopg
from psycopg import sql

from emily.bus.schemas.memory import IndexStatus, PoolStats, RecallFilters
from emily.memory import hnsw, ingest, search
from emily.memory.config import MemoryConfig
from emily.memory.errors import StoreUnavailable
from emily.memory.migrate import apply_migrations
from emily.memory.pgpool import Conn, PgPool
from emily.memory.record import Record, Vector
from emily.memory.rows import column_list, to_record

__all__ = ["Conn", "PgStore"]


class PgStore:
    """Connection pool, schema and queries of the ``episodes`` table.

    Parameters
    ----------
    dsn : libpq connection string (unix socket on the host, pgserver's on a laptop).
    cfg : pool sizes, HNSW parameters and storage type.

    Raises
    ------
    StoreUnavailable
        Postgres cannot be reached.
    """

    def __init__(self, dsn: str, cfg: MemoryConfig) -> None:
        self.cfg = cfg
        self.dsn = dsn
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                apply_migrations(conn)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(
                f"cannot connect to Postgres ({exc}); check [memory] dsn or start Postgres"
            ) from exc
        self.pool = PgPool(dsn, cfg)
        self._nearest = search.NearestSearch(self.pool, cfg)
        self.ensure_index()

    @property
    def index_name(self) -> str:
        """Name of the HNSW index for the configured storage."""
        return hnsw.index_name(self.cfg)

    def connection(self) -> AbstractContextManager[Conn]:
        """A pooled connection; Postgres being down raises :class:`StoreUnavailable`."""
        return self.pool.connection()

    def session(self, conn: Conn | None = None) -> AbstractContextManager[Conn]:
        """``conn`` when given, else a pooled connection (so callers can batch queries)."""
        return self.pool.session(conn)

    def ensure_index(self) -> None:
        """Create the HNSW index, rebuilding it when ``m``/``ef_construction`` changed."""
        with self.connection() as conn:
            hnsw.ensure_index(conn, self.cfg)

    def insert(self, records: Sequence[Record]) -> int:
        """Store ``records`` durably; ids already present are skipped. Returns rows added.

        One record is one ``INSERT``, a batch a binary ``COPY``, split over pooled
        connections when large; a retried batch is deduplicated
        (:func:`emily.memory.ingest.insert`).

        Raises
        ------
        InvalidRecord
            A record Postgres would refuse; nothing of the batch is stored.
        StoreUnavailable
            Postgres is unreachable; retry the batch (it is stored exactly once).
        """
        return ingest.insert(self.pool, self.cfg, records)

    def search(
        self,
        query: Vector,
        k: int,
        filters: RecallFilters | None = None,
        *,
        ef_search: int | None = None,
        exact: bool = False,
        conn: Conn | None = None,
        user: str | None = None,
        agent: str | None = None,
    ) -> list[tuple[uuid.UUID, float]]:
        """The ``k`` nearest episodes to ``query`` ``(384,)``: ``[(id, cosine similarity)]``.

        The search settings (``hnsw.ef_search``, iterative scans for filters) are
        session settings of the pooled connection, sent only when they differ from what
        that connection last had, so a search is usually one prepared statement: one
        round trip, no transaction.
        ``exact=True`` forces a sequential scan (the ground truth benchmarks compare to).
        ``user`` (and ``agent``) limit the search to that scope; ``None`` reads every
        user's episodes (tools and benchmarks only: recalls always name a user).
        """
        rows = self._nearest.rows(
            query, k, filters, ef_search, exact, conn, bodies=False, user=user, agent=agent
        )
        return [(row[0], 1.0 - float(row[1])) for row in rows]

    def search_records(
        self,
        query: Vector,
        k: int,
        filters: RecallFilters | None = None,
        *,
        ef_search: int | None = None,
        conn: Conn | None = None,
        user: str | None = None,
        agent: str | None = None,
    ) -> list[tuple[Record, float]]:
        """Like :meth:`search`, with each episode's full record: ``[(record, similarity)]``.

        The index scan visits each result's heap row anyway, so the bodies come back in
        the same round trip (binary transfer) instead of a second ``fetch``.
        """
        rows = self._nearest.rows(
            query, k, filters, ef_search, False, conn, bodies=True, user=user, agent=agent
        )
        return [(to_record(row), 1.0 - float(row[-1])) for row in rows]

    def text_search(
        self,
        text: str,
        k: int,
        filters: RecallFilters | None = None,
        *,
        user: str,
        agent: str | None = None,
    ) -> list[tuple[uuid.UUID, float]]:
        """Full-text candidates of hybrid recall, best ``ts_rank_cd`` first: ``[(id, rank)]``.

        A plain text matches episodes holding any of its words; one with quotes, ``-``
        or ``or`` is web-search syntax (:func:`emily.memory.search.text_query`).
        """
        stmt, params = search.text_query(text, k, filters, user, agent)
        with self.connection() as conn:
            rows = conn.execute(stmt, params).fetchall()
        return [(row[0], float(row[1])) for row in rows]

    def scopes(self) -> dict[uuid.UUID, tuple[str, str | None, str, str, str | None]]:
        """``(user, agent, role, act, session)`` of every stored episode (the in-process
        index's partitions); about 100 bytes a row."""
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT id, user_name, agent_name, role, act, session FROM episodes"
            ).fetchall()
        return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in rows}

    def fetch(
        self, ids: Sequence[uuid.UUID], *, conn: Conn | None = None
    ) -> dict[uuid.UUID, Record]:
        """Full records of ``ids`` that exist, keyed by id (binary transfer)."""
        if not ids:
            return {}
        with self.session(conn) as c:
            rows = c.execute(
                sql.SQL("SELECT {} FROM episodes WHERE id = ANY(%s)").format(column_list()),
                (list(ids),),
                binary=True,
            ).fetchall()
        return {row[0]: to_record(row) for row in rows}

    def existing(self, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """The subset of ``ids`` stored in Postgres."""
        if not ids:
            return set()
        with self.connection() as conn:
            rows = conn.execute("SELECT id FROM episodes WHERE id = ANY(%s)", (list(ids),))
            return {r[0] for r in rows.fetchall()}

    def count(self) -> int:
        """Number of stored episodes."""
        with self.connection() as conn:
            row = conn.execute("SELECT count(*) FROM episodes").fetchone()
        return int(row[0]) if row else 0

    def all_ids(self) -> set[uuid.UUID]:
        """Every stored id (tests and small tools; not for large tables)."""
        with self.connection() as conn:
            return {r[0] for r in conn.execute("SELECT id FROM episodes").fetchall()}

    def pool_stats(self) -> PoolStats:
        """psycopg_pool's counters of the connection pool."""
        return self.pool.stats()

    def index_params(self) -> IndexStatus:
        """HNSW and search settings in effect."""
        return hnsw.status(self.cfg)

    def close(self) -> None:
        """Close the pool."""
        self.pool.close()
