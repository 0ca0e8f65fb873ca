"""Tier L3: Postgres + pgvector, the durable truth.

Ingest is batched binary COPY straight into ``episodes``, encoded with NumPy
(:mod:`emily.memory.pgcopy`); a large batch is split over pooled connections whose parts
commit together. A batch holding stored ids (a retry from the outbox) goes through a
staging table and ``INSERT ... ON CONFLICT DO NOTHING`` instead, so it is stored exactly
once.
Search is HNSW (``vector_cosine_ops`` or ``halfvec_cosine_ops``) with a per-query
``hnsw.ef_search``; filtered searches switch on ``hnsw.iterative_scan = relaxed_order``
so a selective filter still returns k rows. A recall is one prepared statement that
returns the bodies too; the settings are sent only when a connection's differ.
"""

from __future__ import annotations

import logging
import re
import select
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from emily.bus.schemas.memory import EMBED_DIM, IndexStatus, PoolStats, RecallFilters
from emily.memory import pgcopy
from emily.memory.config import MemoryConfig
from emily.memory.errors import StoreUnavailable
from emily.memory.filters import where_clause
from emily.memory.migrate import apply_migrations
from emily.memory.record import Record, Vector

log = logging.getLogger(__name__)
COLUMNS = (
    *("id", "ts", "text", "embedding", "valence", "arousal", "dominance", "context", "source"),
    *("user_name", "agent_name", "role", "act", "session", "reply_to", "repeats", "last_seen"),
)
TYPES = (
    *("uuid", "timestamptz", "text", "vector", "float4", "float4", "float4", "jsonb", "text"),
    *("text", "text", "text", "text", "text", "uuid", "int4", "timestamptz"),
)
Conn = psycopg.Connection[tuple[Any, ...]]
#: quotes, a leading minus or "or": the text uses web-search syntax, kept as written
_WEBSEARCH_SYNTAX = re.compile(r'"|(?:^|\s)-\S|\bor\b', re.IGNORECASE)
_MORE_WAIT_S = 0.05  # how long a large ingest waits for each extra pooled connection
_SET_GUCS = (
    "SELECT set_config('hnsw.ef_search', %s, false), "
    "set_config('hnsw.iterative_scan', %s, false), "
    "set_config('hnsw.max_scan_tuples', %s, false)"
)


def _check(conn: Conn) -> None:
    """The pool's check before it lends ``conn``, without a round trip when it is healthy.

    An idle connection has nothing to read: a server that went away (crash, restart,
    ``pg_terminate_backend``) leaves a readable socket (EOF or its last message). Only
    then, or when libpq already marks the connection bad, does the full check (an empty
    query) run; it raises for a dead connection, so the pool replaces it.
    """
    if conn.closed or conn.pgconn.status != psycopg.pq.ConnStatus.OK:
        raise psycopg.OperationalError("the pooled connection is closed")
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        ConnectionPool.check_connection(conn)


def _row(rec: Record) -> tuple[Any, ...]:
    return (
        rec.id,
        rec.ts,
        rec.text,
        rec.embedding,
        # as float32, as COPY sends them: the columns are real, and a float64 that
        # underflows float32 is 0 there, not an error
        *(float(v) for v in np.array([rec.valence, rec.arousal, rec.dominance], np.float32)),
        Jsonb(rec.context),
        rec.source,
        rec.user,
        rec.agent,
        rec.role,
        rec.act,
        rec.session,
        rec.reply_to,
        rec.repeats,
        rec.last_seen,
    )


def _array(value: Any) -> Vector:
    """pgvector's ``Vector`` (or an array) as float32 ``(384,)``."""
    raw = value.to_numpy() if hasattr(value, "to_numpy") else value
    return np.asarray(raw, dtype=np.float32)


def _record(row: Sequence[Any]) -> Record:
    return Record(
        id=row[0],
        ts=row[1],
        text=row[2],
        embedding=_array(row[3]),
        valence=float(row[4]),
        arousal=float(row[5]),
        dominance=float(row[6]),
        context=row[7],
        source=row[8],
        user=row[9],
        agent=row[10],
        role=row[11],
        act=row[12],
        session=row[13],
        reply_to=row[14],
        repeats=int(row[15]),
        last_seen=row[16],
    )


class PgStore:
    """Connection pool, schema and queries of the ``episodes`` table.

    Parameters
    ----------
    dsn : libpq connection string (unix socket on the host, pgserver's on a laptop).
    cfg : pool sizes, HNSW parameters and storage type.
    """

    def __init__(self, dsn: str, cfg: MemoryConfig) -> None:
        self.cfg = cfg
        self.dsn = dsn
        # search settings each pooled connection holds; forgotten with the connection
        self._gucs: weakref.WeakKeyDictionary[Conn, tuple[str, str, str]] = (
            weakref.WeakKeyDictionary()
        )
        self._stmts: dict[tuple[str, bool, bool], sql.Composed] = {}
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                apply_migrations(conn)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(
                f"cannot connect to Postgres ({exc}); check [memory] dsn or start Postgres"
            ) from exc
        self.pool: ConnectionPool[Conn] = ConnectionPool(
            dsn,
            min_size=cfg.pool_min,
            max_size=cfg.pool_max,
            timeout=cfg.pool_timeout_s,
            configure=register_vector,
            check=_check,
            kwargs={"autocommit": True},
            open=True,
            name="emily-memory",
        )
        self.ensure_index()

    @property
    def index_name(self) -> str:
        """Name of the HNSW index for the configured storage."""
        return f"episodes_embedding_hnsw_{self.cfg.storage}"

    def _distance(self) -> sql.Composable:
        if self.cfg.storage == "halfvec":
            return sql.SQL("(embedding::halfvec({d})) <=> (%(q)s::halfvec({d}))").format(
                d=sql.Literal(EMBED_DIM)
            )
        return sql.SQL("embedding <=> %(q)s")

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        """A pooled connection; Postgres being down raises :class:`StoreUnavailable`."""
        try:
            with self.pool.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StoreUnavailable(
                f"Postgres is unreachable ({type(exc).__name__}: {exc}); stores are kept in "
                "the outbox until it is back"
            ) from exc

    def ensure_index(self) -> None:
        """Create the HNSW index, rebuilding it when ``m``/``ef_construction`` changed."""
        cfg = self.cfg
        want = {f"m={cfg.hnsw_m}", f"ef_construction={cfg.hnsw_ef_construction}"}
        with self.connection() as conn:
            row = conn.execute(
                "SELECT reloptions FROM pg_class WHERE relname = %s", (self.index_name,)
            ).fetchone()
            if row is not None and set(row[0] or []) == want:
                return
            conn.execute("SET maintenance_work_mem = '256MB'")
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(self.index_name)))
            expr: sql.Composable
            if cfg.storage == "halfvec":
                expr = sql.SQL("(embedding::halfvec({d})) halfvec_cosine_ops").format(
                    d=sql.Literal(EMBED_DIM)
                )
            else:
                expr = sql.SQL("embedding vector_cosine_ops")
            conn.execute(
                sql.SQL(
                    "CREATE INDEX {name} ON episodes USING hnsw ({expr}) "
                    "WITH (m = {m}, ef_construction = {efc})"
                ).format(
                    name=sql.Identifier(self.index_name),
                    expr=expr,
                    m=sql.Literal(cfg.hnsw_m),
                    efc=sql.Literal(cfg.hnsw_ef_construction),
                )
            )
            log.info(
                "built %s (m=%d, ef_construction=%d)",
                self.index_name,
                cfg.hnsw_m,
                cfg.hnsw_ef_construction,
            )

    @contextmanager
    def _more_connections(self, n: int) -> Iterator[list[Conn]]:
        """Up to ``n`` more pooled connections, only those free (or opened) within 50 ms."""
        got: list[Conn] = []
        try:
            for _ in range(n):
                try:
                    got.append(self.pool.getconn(timeout=_MORE_WAIT_S))
                except PoolTimeout:
                    break
            yield got
        finally:
            for conn in got:
                self.pool.putconn(conn)

    def insert(self, records: Sequence[Record]) -> int:
        """Store ``records`` durably; ids already present are skipped. Returns rows added.

        One record: a single ``INSERT ... ON CONFLICT DO NOTHING``. A batch: binary ``COPY``
        straight into ``episodes`` (:mod:`emily.memory.pgcopy`); a batch of at least
        ``2 * copy_part_rows`` rows is split over up to ``copy_connections`` pooled
        connections, which commit together. If any id is already there (a retried batch),
        that rolls back and the batch goes through a staging table and
        ``INSERT ... SELECT ... ON CONFLICT (id) DO NOTHING`` instead.

        Raises
        ------
        InvalidRecord
            A record Postgres would refuse; nothing of the batch is stored.
        StoreUnavailable
            Postgres is unreachable; retry the batch (it is stored exactly once).
        """
        if not records:
            return 0
        cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        with self.connection() as conn:
            if len(records) == 1:
                try:
                    cur = conn.execute(
                        sql.SQL(
                            "INSERT INTO episodes ({}) VALUES ({}) ON CONFLICT (id) DO NOTHING"
                        ).format(cols, sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS))),
                        _row(records[0]),
                    )
                except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
                    raise pgcopy.InvalidRecord(
                        f"episode {records[0].id}: Postgres refused it ({exc})"
                    ) from exc
                return cur.rowcount
            cfg = self.cfg
            parts = min(cfg.copy_connections, cfg.pool_max, len(records) // cfg.copy_part_rows)
            try:
                with self._more_connections(parts - 1) as more:
                    pgcopy.copy_parallel([conn, *more], "episodes", records)
                return len(records)
            except (
                psycopg.errors.UniqueViolation,
                psycopg.errors.DeadlockDetected,
                psycopg.errors.LockNotAvailable,
            ):
                # a stored id, or an id twice in a split batch (one part waits for another)
                log.info("batch of %d holds stored or repeated ids; deduplicating", len(records))
            with conn.transaction():
                conn.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS episodes_stage "
                    "(LIKE episodes INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                pgcopy.copy(conn, "episodes_stage", records)
                cur = conn.execute(
                    sql.SQL(
                        "INSERT INTO episodes ({c}) SELECT {c} FROM episodes_stage "
                        "ON CONFLICT (id) DO NOTHING"
                    ).format(c=cols)
                )
                return cur.rowcount

    @contextmanager
    def session(self, conn: Conn | None = None) -> Iterator[Conn]:
        """``conn`` when given, else a pooled connection (so callers can batch queries)."""
        if conn is not None:
            yield conn
        else:
            with self.connection() as pooled:
                yield pooled

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
        rows = self._nearest(
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
        rows = self._nearest(
            query, k, filters, ef_search, False, conn, bodies=True, user=user, agent=agent
        )
        return [(_record(row), 1.0 - float(row[-1])) for row in rows]

    def _nearest(
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
        where, params = where_clause(filters or RecallFilters(), user, agent)
        params.update(q=query, k=k)
        filtered = bool(params.keys() - {"q", "k"})
        key = (where.as_string(None) if filtered else "", exact, bodies)
        stmt = self._stmts.get(key)
        if stmt is None:
            cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS if bodies else COLUMNS[:1]))
            stmt = sql.SQL(
                "WITH c AS MATERIALIZED (SELECT {cols}, {dist} AS d FROM episodes {where} "
                "ORDER BY {dist} LIMIT %(k)s) SELECT {cols}, d FROM c ORDER BY d"
            ).format(cols=cols, dist=self._distance(), where=where)
            self._stmts[key] = stmt
        ef = ef_search or self.cfg.ef_search
        with self.session(conn) as c:
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

    def text_search(
        self,
        text: str,
        k: int,
        filters: RecallFilters | None = None,
        *,
        user: str,
        agent: str | None = None,
    ) -> list[tuple[uuid.UUID, float]]:
        """Full-text candidates of hybrid recall: the ``k`` episodes of the scope whose
        ``tsv`` matches ``websearch_to_tsquery('english', text)``, best ``ts_rank_cd``
        first: ``[(id, rank)]``. A text with no searchable word matches nothing.

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
        with self.connection() as c:
            rows = c.execute(stmt, params).fetchall()
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
        cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        with self.session(conn) as c:
            rows = c.execute(
                sql.SQL("SELECT {} FROM episodes WHERE id = ANY(%s)").format(cols),
                (list(ids),),
                binary=True,
            ).fetchall()
        return {row[0]: _record(row) for row in rows}

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
        s = self.pool.get_stats()
        return PoolStats(
            min_size=s.get("pool_min", 0),
            max_size=s.get("pool_max", 0),
            size=s.get("pool_size", 0),
            available=s.get("pool_available", 0),
            waiting=s.get("requests_waiting", 0),
            requests=s.get("requests_num", 0),
            errors=s.get("requests_errors", 0) + s.get("connections_errors", 0),
        )

    def index_params(self) -> IndexStatus:
        """HNSW and search settings in effect."""
        c = self.cfg
        return IndexStatus(
            m=c.hnsw_m,
            ef_construction=c.hnsw_ef_construction,
            ef_search=c.ef_search,
            iterative_scan="relaxed_order",
            max_scan_tuples=c.max_scan_tuples,
            storage=c.storage,
        )

    def close(self) -> None:
        """Close the pool."""
        self.pool.close()
