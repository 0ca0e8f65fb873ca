"""A durable local outbox for stores that could not reach Postgres.

Episodes (with their final ids and embeddings) are written to a SQLite file under the
state dir with ``synchronous=FULL`` before the store is acknowledged, and a background
thread delivers them with :meth:`PgStore.insert`, whose ``ON CONFLICT DO NOTHING`` makes
a retried delivery exactly-once. Rows leave the outbox only after Postgres committed.

A state dir that is read-only or full does not stop memory: the outbox that cannot be
opened is retried every ``retry_s`` (stores go straight to Postgres meanwhile), and a
store that neither Postgres nor the outbox can take is :class:`StoreUnavailable`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from emily.memory.errors import StoreUnavailable
from emily.memory.record import Record
from emily.sqlite_wal import truncate_wal

log = logging.getLogger(__name__)
Deliver = Callable[[Sequence[Record]], object]  # what it returns is not used


class Outbox:
    """Pending episodes in ``path`` (SQLite), delivered by :meth:`drain`.

    Parameters
    ----------
    path : the SQLite file (created if missing).
    retry_s : seconds between attempts to open it after it could not be opened.
    """

    def __init__(self, path: Path, retry_s: float = 30.0) -> None:
        self.path = path
        self.retry_s = retry_s
        self.error: str | None = None  # why the outbox is not open
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._failed_at = -float("inf")
        with self._lock:
            self._open()

    def _open(self) -> sqlite3.Connection | None:
        """The database, opened (retried every ``retry_s``) when it is not; lock held."""
        if self._db is not None or time.monotonic() - self._failed_at < self.retry_s:
            return self._db
        db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            # a forgotten episode's text must not outlive its row in free pages
            db.execute("PRAGMA secure_delete=ON")
            db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " id TEXT UNIQUE NOT NULL, record TEXT NOT NULL, embedding BLOB NOT NULL)"
            )
        except (sqlite3.Error, OSError) as exc:
            if db is not None:
                db.close()
            self._failed_at = time.monotonic()
            self.error = (
                f"the outbox {self.path} cannot be opened ({exc}); stores go straight to "
                "Postgres and are refused while it is down: make the state dir writable"
            )
            log.error("%s", self.error)
            return None
        if self.error:
            log.info("the outbox %s is open again", self.path)
        self.error = None
        self._db = db
        return db

    def put(self, records: Sequence[Record]) -> None:
        """Durably queue ``records`` (a record already queued is kept once)."""
        rows = [
            (str(r.id), json.dumps(r.to_json()), r.embedding.astype("<f4").tobytes())
            for r in records
        ]
        with self._lock:
            db = self._open()
            if db is None:
                raise StoreUnavailable(f"Postgres is unreachable and {self.error}")
            try:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "INSERT OR IGNORE INTO outbox (id, record, embedding) VALUES (?, ?, ?)", rows
                )
                db.execute("COMMIT")
            except sqlite3.Error as exc:  # a full disk: nothing of the batch is queued
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise StoreUnavailable(
                    f"Postgres is unreachable and the outbox {self.path} cannot take "
                    f"{len(rows)} episodes ({exc}); free space in the state dir"
                ) from exc

    def pending(self) -> int:
        """Episodes waiting for delivery."""
        with self._lock:
            db = self._open()
            row = db.execute("SELECT count(*) FROM outbox").fetchone() if db else (0,)
        return int(row[0])

    def peek(self, limit: int = 1000) -> list[tuple[int, Record]]:
        """The oldest ``limit`` queued records with their sequence numbers."""
        with self._lock:
            db = self._open()
            if db is None:
                return []
            rows = db.execute(
                "SELECT seq, record, embedding FROM outbox ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [
            (seq, Record.from_json(json.loads(rec), np.frombuffer(emb, dtype="<f4").copy()))
            for seq, rec, emb in rows
        ]

    def ids(self) -> set[uuid.UUID]:
        """Ids of every queued episode."""
        with self._lock:
            db = self._open()
            return {uuid.UUID(r[0]) for r in db.execute("SELECT id FROM outbox")} if db else set()

    def remove(self, ids: Sequence[uuid.UUID]) -> int:
        """Drop queued copies of ``ids`` (a forget, or a correction re-queues); returns
        how many were queued."""
        if not ids:
            return 0
        with self._lock:
            db = self._open()
            if db is None:
                raise StoreUnavailable(f"the outbox cannot drop queued episodes: {self.error}")
            cur = db.executemany("DELETE FROM outbox WHERE id = ?", [(str(k),) for k in ids])
            truncate_wal(db, "outbox after a delete")  # see emily.sqlite_wal
            return int(cur.rowcount)

    def drain(self, deliver: Deliver, batch: int = 1000) -> int:
        """Deliver queued episodes oldest first; returns how many left the outbox.

        Stops at the first failure (Postgres still down) and keeps the rest queued.
        """
        done = 0
        while True:
            items = self.peek(batch)
            if not items:
                return done
            try:
                deliver([rec for _, rec in items])
            except StoreUnavailable as exc:
                log.info("outbox: %d episodes wait for Postgres (%s)", len(items), exc)
                return done
            with self._lock:
                assert self._db is not None  # peek returned rows: it is open
                self._db.execute("DELETE FROM outbox WHERE seq <= ?", (items[-1][0],))
                truncate_wal(self._db, "outbox after a delivery")
            done += len(items)

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            self._failed_at = float("inf")  # closed for good
