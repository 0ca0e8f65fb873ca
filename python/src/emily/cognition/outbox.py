"""Cognition's durable queue of episodes that memory has not stored yet.

Each cycle's episode is written to a SQLite file under the state dir before the writer
sends it, and leaves only once memory has acknowledged it (or refused it for good), so
a restart of cognition loses none. Every episode carries its UUIDv7 id, and memory's
store is idempotent on ids, so an episode sent again after a crash between the store and
the delete is stored once. WAL with ``synchronous=NORMAL``: a commit survives the
process dying, which is the failure this guards against, without an fsync per cycle.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from emily.bus.messages import decode
from emily.bus.schemas.memory import EpisodeIn
from emily.errors import PayloadError

log = logging.getLogger(__name__)


class EpisodeOutbox:
    """Pending episodes, oldest first, in ``path`` (``None``: in memory only).

    Parameters
    ----------
    path : the SQLite file (created with its directory if missing), or ``None``.
    """

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        where = str(path) if path is not None else ":memory:"
        self._db = sqlite3.connect(where, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS episodes (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " id TEXT UNIQUE NOT NULL, episode TEXT NOT NULL)"
        )

    def put(self, episode: EpisodeIn, keep: int) -> int:
        """Queue ``episode`` (once per id), keeping at most ``keep``; returns how many of
        the oldest were dropped to make room."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR IGNORE INTO episodes (id, episode) VALUES (?, ?)",
                (str(episode.id), episode.model_dump_json()),
            )
            (count,) = self._db.execute("SELECT count(*) FROM episodes").fetchone()
            over = max(0, int(count) - keep)
            if over:
                self._db.execute(
                    "DELETE FROM episodes WHERE seq IN"
                    " (SELECT seq FROM episodes ORDER BY seq LIMIT ?)",
                    (over,),
                )
            self._db.execute("COMMIT")
        return over

    def peek(self, limit: int) -> list[tuple[int, EpisodeIn]]:
        """The oldest ``limit`` episodes with their sequence numbers.

        A row that no longer decodes (a damaged file, an episode an older build wrote
        under other rules) is removed with a warning instead of blocking the rest.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, episode FROM episodes ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        good, bad = [], []
        for seq, text in rows:
            try:
                good.append((int(seq), decode(EpisodeIn, text)))
            except PayloadError as exc:
                log.warning("outbox row %d is not an episode, removed: %s", seq, exc)
                bad.append(int(seq))
        if bad:
            self.remove(bad)
        return good

    def remove(self, seqs: list[int]) -> None:
        """Forget the episodes ``seqs`` (stored, or refused for good)."""
        with self._lock:
            self._db.executemany("DELETE FROM episodes WHERE seq = ?", [(s,) for s in seqs])

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM episodes").fetchone()
        return int(count)

    def close(self) -> None:
        """Close the file (what is queued stays for the next start)."""
        with self._lock:
            self._db.close()
