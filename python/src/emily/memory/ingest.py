"""The write path of L3: episodes into ``episodes``, each stored exactly once.

One record is a single ``INSERT ... ON CONFLICT DO NOTHING``. A batch is binary ``COPY``
straight into ``episodes``, encoded with NumPy (:mod:`emily.memory.pgcopy`); a batch of
at least ``2 * copy_part_rows`` rows is split over up to ``copy_connections`` pooled
connections, whose parts commit together. If any id is already there (a retry from the
outbox), that rolls back and the batch goes through a staging table and
``INSERT ... SELECT ... ON CONFLICT (id) DO NOTHING`` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg
from psycopg import sql

from emily.memory import pgcopy
from emily.memory.config import MemoryConfig
from emily.memory.pgpool import Conn, PgPool
from emily.memory.record import Record
from emily.memory.rows import COLUMNS, column_list, to_row

log = logging.getLogger(__name__)


def insert(pool: PgPool, cfg: MemoryConfig, records: Sequence[Record]) -> int:
    """Store ``records`` over ``pool``, each id once; the rows added (the errors are
    :meth:`emily.memory.store.PgStore.insert`'s)."""
    if not records:
        return 0
    with pool.connection() as conn:
        if len(records) == 1:
            return _insert_one(conn, records[0])
        parts = min(cfg.copy_connections, cfg.pool_max, len(records) // cfg.copy_part_rows)
        try:
            with pool.more(parts - 1) as more:
                pgcopy.copy_parallel([conn, *more], "episodes", records)
            return len(records)
        except (
            psycopg.errors.UniqueViolation,
            psycopg.errors.DeadlockDetected,
            psycopg.errors.LockNotAvailable,
        ):
            # a stored id, or an id twice in a split batch (one part waits for another)
            log.info("batch of %d holds stored or repeated ids; deduplicating", len(records))
        return _insert_new(conn, records)


def _insert_one(conn: Conn, rec: Record) -> int:
    """``INSERT`` of one record; 0 when its id is stored already."""
    stmt = sql.SQL("INSERT INTO episodes ({}) VALUES ({}) ON CONFLICT (id) DO NOTHING").format(
        column_list(), sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS))
    )
    try:
        return conn.execute(stmt, to_row(rec)).rowcount
    except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
        raise pgcopy.InvalidRecord(f"episode {rec.id}: Postgres refused it ({exc})") from exc


def _insert_new(conn: Conn, records: Sequence[Record]) -> int:
    """The records whose ids are not stored yet, through a staging table; rows added."""
    cols = column_list()
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
