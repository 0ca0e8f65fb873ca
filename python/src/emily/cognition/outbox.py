"""Cognition's durable queue of episodes that memory has not stored yet.

Each cycle's episodes are written to a SQLite file under the state dir before its reply
is sent, and leave only once memory has acknowledged them (or refused them for good), so
a restart of cognition loses none, not even a turn whose answer the user has just read.
Every episode carries its UUIDv7 id, and memory's store is idempotent on ids, so an
episode sent again after a crash between the store and the delete is stored once.

WAL mode. ``sync="normal"`` (``synchronous=NORMAL``, the default): a commit is written
to the WAL file without an fsync, so it survives the process dying (killed, crashed),
which is the failure this guards against, and the cycle waits for no disk flush; what was
committed since the last checkpoint can be lost if the machine itself loses power.
``sync="full"`` (``synchronous=FULL``) fsyncs the WAL at every commit, so a committed turn
survives a power loss too, at the cost of one disk flush per cycle on the reply path.

SQLite's automatic checkpoint (merging the WAL into the database file, with its own disk
flushes) would run inside whichever commit crossed its threshold, that is inside some
cycle's reply path; it is off, and the writer's background thread calls
:meth:`EpisodeOutbox.checkpoint` instead, every :data:`CHECKPOINT_EVERY` episodes.

What the user said must not stay on disk here once memory has it, where ``memory
forget`` cannot reach it: deleted rows are overwritten (``secure_delete``), and once the
queue is empty :meth:`EpisodeOutbox.scrub` merges the WAL and truncates it, since its
older frames still hold the delivered rows' text.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from emily.bus.messages import decode
from emily.bus.schemas.memory import EpisodeIn
from emily.errors import PayloadError
from emily.sqlite_wal import truncate_wal

log = logging.getLogger(__name__)

Sync = Literal["normal", "full"]
#: Episodes written between two checkpoints of the WAL into the database file.
CHECKPOINT_EVERY = 256
#: WAL pages past which a checkpoint holds the commits back to finish and restart the
#: WAL: only under writes so steady that a passive one never catches up (16 MiB).
WAL_MAX_PAGES = 4096


class EpisodeOutbox:
    """Pending episodes, oldest first, in ``path`` (``None``: in memory only).

    Parameters
    ----------
    path : the SQLite file (created with its directory if missing), or ``None``.
    sync : ``"normal"`` (a commit survives the process dying) or ``"full"`` (it survives
        a power loss too: an fsync per commit); see the module docstring.
    """

    def __init__(self, path: Path | None, sync: Sync = "normal") -> None:
        if sync not in ("normal", "full"):
            raise ValueError(f"outbox sync must be 'normal' or 'full', got {sync!r}")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        where = str(path) if path is not None else ":memory:"
        self._db = sqlite3.connect(where, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={sync.upper()}")
        self._db.execute("PRAGMA wal_autocheckpoint=0")  # see checkpoint()
        self._db.execute("PRAGMA secure_delete=ON")  # see the module docstring
        self._unmerged = 0  # episodes written since the last checkpoint
        self._merger: sqlite3.Connection | None = None
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS episodes (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " id TEXT UNIQUE NOT NULL, episode TEXT NOT NULL)"
        )

    def put(self, episode: EpisodeIn, keep: int) -> int:
        """Queue ``episode`` (once per id), keeping at most ``keep``; returns how many of
        the oldest were dropped to make room."""
        return self.put_many([episode], keep)

    def put_many(self, episodes: Sequence[EpisodeIn], keep: int) -> int:
        """Queue ``episodes`` in order (each once per id) in one commit, keeping at most
        ``keep``; returns how many of the oldest were dropped to make room."""
        rows = [(str(ep.id), ep.model_dump_json()) for ep in episodes]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR IGNORE INTO episodes (id, episode) VALUES (?, ?)", rows)
            (count,) = self._db.execute("SELECT count(*) FROM episodes").fetchone()
            over = max(0, int(count) - keep)
            if over:
                self._db.execute(
                    "DELETE FROM episodes WHERE seq IN"
                    " (SELECT seq FROM episodes ORDER BY seq LIMIT ?)",
                    (over,),
                )
            self._db.execute("COMMIT")
            self._unmerged += len(rows)
        return over

    def checkpoint_due(self) -> bool:
        """Whether :data:`CHECKPOINT_EVERY` episodes were written since the last
        :meth:`checkpoint` (always ``False`` in memory)."""
        return self.path is not None and self._unmerged >= CHECKPOINT_EVERY

    def checkpoint(self) -> None:
        """Merge the WAL into the database file, with the disk flushes that takes, on
        the caller's thread (the writer's background worker).

        A passive checkpoint on a connection of its own: commits go on meanwhile and
        nothing waits for it; the WAL starts over at the next commit once one has caught
        up. Should the WAL still pass :data:`WAL_MAX_PAGES`, it is truncated with the
        commits held back for that one checkpoint.
        """
        if self.path is None:
            return
        self._unmerged = 0
        if self._merger is None:
            self._merger = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None
            )
        _, pages, _ = self._merger.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if pages > WAL_MAX_PAGES:
            with self._lock:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def scrub(self) -> bool:
        """If the queue is empty, merge the WAL and truncate it, so no delivered
        episode's text stays in it; returns whether it did (``False`` in memory, with
        episodes queued, or while another connection reads the WAL).

        One checkpoint with its disk flush, holding back commits meanwhile: the writer
        calls it once a delivery emptied the queue, at most every
        :data:`~emily.cognition.episodes.SCRUB_AFTER_S` seconds.
        """
        if self.path is None:
            return False
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM episodes").fetchone()
            if count:
                return False
            return truncate_wal(self._db, "episode outbox")

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
        """Close the file (what is queued stays for the next start; an empty queue
        leaves no WAL behind)."""
        self.scrub()
        with self._lock:
            if self._merger is not None:
                self._merger.close()
            self._db.close()
