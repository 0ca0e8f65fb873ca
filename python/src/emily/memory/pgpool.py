"""The memory store's pool of Postgres connections.

Connections are autocommit, have pgvector's types registered, and are checked before
each loan without a round trip (:func:`check`). Postgres being unreachable is one typed
error, :class:`~emily.memory.errors.StoreUnavailable`, which the service answers as
``unavailable`` while stores wait in the outbox.
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool, PoolTimeout

from emily.bus.schemas.memory import PoolStats
from emily.memory.config import MemoryConfig
from emily.memory.errors import StoreUnavailable

Conn = psycopg.Connection[tuple[Any, ...]]
_MORE_WAIT_S = 0.05  # how long a large ingest waits for each extra pooled connection


def check(conn: Conn) -> None:
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


class PgPool:
    """``cfg.pool_min`` to ``cfg.pool_max`` connections to ``dsn``, opened at once.

    Parameters
    ----------
    dsn : libpq connection string.
    cfg : pool sizes and the loan timeout (``pool_timeout_s``, seconds).
    """

    def __init__(self, dsn: str, cfg: MemoryConfig) -> None:
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            dsn,
            min_size=cfg.pool_min,
            max_size=cfg.pool_max,
            timeout=cfg.pool_timeout_s,
            configure=register_vector,
            check=check,
            kwargs={"autocommit": True},
            open=True,
            name="emily-memory",
        )

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        """A pooled connection; Postgres being down raises :class:`StoreUnavailable`."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StoreUnavailable(
                f"Postgres is unreachable ({type(exc).__name__}: {exc}); stores are kept in "
                "the outbox until it is back"
            ) from exc

    @contextmanager
    def session(self, conn: Conn | None = None) -> Iterator[Conn]:
        """``conn`` when given, else a pooled connection (so callers can batch queries)."""
        if conn is not None:
            yield conn
        else:
            with self.connection() as pooled:
                yield pooled

    @contextmanager
    def more(self, n: int) -> Iterator[list[Conn]]:
        """Up to ``n`` more pooled connections, only those free (or opened) within 50 ms."""
        got: list[Conn] = []
        try:
            for _ in range(n):
                try:
                    got.append(self._pool.getconn(timeout=_MORE_WAIT_S))
                except PoolTimeout:
                    break
            yield got
        finally:
            for conn in got:
                self._pool.putconn(conn)

    def stats(self) -> PoolStats:
        """psycopg_pool's counters of the pool."""
        s = self._pool.get_stats()
        return PoolStats(
            min_size=s.get("pool_min", 0),
            max_size=s.get("pool_max", 0),
            size=s.get("pool_size", 0),
            available=s.get("pool_available", 0),
            waiting=s.get("requests_waiting", 0),
            requests=s.get("requests_num", 0),
            errors=s.get("requests_errors", 0) + s.get("connections_errors", 0),
        )

    def close(self) -> None:
        """Close every connection of the pool."""
        self._pool.close()
