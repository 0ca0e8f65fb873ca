"""A durable local outbox for stores that could not reach Postgres.

Episodes (with their final ids and embeddings) are written to a SQLite file under the
state dir with ``synchronous=FULL`` before the store is acknowledged, and a background
thread delivers them with :meth:`PgStore.insert`, whose ``ON CONFLICT DO NOTHING`` makes
a retried delivery exactly-once. Rows leave the outbox only after Postgres committed.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from emily.memory.errors import StoreUnavailable
from emily.memory.record import Record

log = logging.getLogger(__name__)
Deliver = Callable[[Sequence[Record]], int]


class Outbox:
    """Pending episodes in ``path`` (SQLite), delivered by :meth:`drain`.

    Parameters
    ----------
    path : the SQLite file (created if missing).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " id TEXT UNIQUE NOT NULL, record TEXT NOT NULL, embedding BLOB NOT NULL)"
        )

    def put(self, records: Sequence[Record]) -> None:
        """Durably queue ``records`` (a record already queued is kept once)."""
        rows = [
            (str(r.id), json.dumps(r.to_json()), r.embedding.astype("<f4").tobytes())
            for r in records
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR IGNORE INTO outbox (id, record, embedding) VALUES (?, ?, ?)", rows
            )
            self._db.execute("COMMIT")

    def pending(self) -> int:
        """Episodes waiting for delivery."""
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(row[0])

    def peek(self, limit: int = 1000) -> list[tuple[int, Record]]:
        """The oldest ``limit`` queued records with their sequence numbers."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, record, embedding FROM outbox ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [
            (seq, Record.from_json(json.loads(rec), np.frombuffer(emb, dtype="<f4").copy()))
            for seq, rec, emb in rows
        ]

    def ids(self) -> set[uuid.UUID]:
        """Ids of every queued episode."""
        with self._lock:
            return {uuid.UUID(r[0]) for r in self._db.execute("SELECT id FROM outbox")}

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
                self._db.execute("DELETE FROM outbox WHERE seq <= ?", (items[-1][0],))
            done += len(items)

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._db.close()
