"""Forget marks: a forget also reaches what was said before it but is not stored yet.

A turn can wait in another service's queue while the user forgets it: cognition keeps
each cycle's episodes in its outbox until memory acknowledges them, so after an outage
of memory, or while cognition itself is down, ``emily memory forget --match TEXT`` can
find nothing in Postgres and the turn, delivered a minute later, would be stored as if
never forgotten. Every forget therefore leaves a mark in ``memory_forget_marks``
(``migrations/0007_forget_marks.sql``), in the forget's own transaction: the user, the
match (case-folded) or the ids, and the time. Every insert (a store, the outbox's
delivery, an ingest) withholds an episode a mark covers:

- a mark of ids covers those ids of its user, whenever they were said;
- a mark of a match covers its user's episodes whose text contains it and that were
  said before the mark: at their UUIDv7 id's time (every episode cognition and
  perception send has one), else at their timestamp. What the user says after a forget
  is stored as usual, even when it repeats the forgotten words.

A withheld episode is logged as forgotten (:func:`emily.memory.lifecycle.forget_withheld`:
a ``forget`` event with its media's hash and whether a stored episode still names that
media), so that perception deletes a recording or an image whose only episode was
withheld, as it would after a forget.

An insert checks the marks and commits while holding :meth:`ForgetMarks.storing`,
which inserts share, and a forget searches, deletes and notes its mark while holding
:meth:`ForgetMarks.forgetting` alone. So a forget waits for the inserts already past
their check and finds what they committed, and an insert that begins during a forget
is checked against its mark; without it, a store checked just before a forget's mark
and committed just after its search would keep what the user had just forgotten. A
forget that waits bars new inserts, so a stream of stores under load cannot starve it.

A mark holds the forget's words, which the user wants gone, so it is kept only
``forget_marks_days`` days (7 by default: longer than a turn is expected to wait in a
queue) and then deleted by the maintenance loop; 0 leaves no marks at all.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from emily.memory.record import Record
from emily.memory.rwlock import RWLock
from emily.memory.store import Conn

Connect = Callable[[], AbstractContextManager[Conn]]


def said_at(rec: Record) -> datetime:
    """When ``rec`` was said: its UUIDv7 id's millisecond time, else its timestamp (UTC)."""
    if rec.id.version == 7:
        return datetime.fromtimestamp((rec.id.int >> 80) / 1000, UTC)
    return rec.ts if rec.ts.tzinfo is not None else rec.ts.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Mark:
    """One forget of ``user``'s episodes at ``at``: those in ``ids``, or those whose text
    contains ``match`` (already case-folded). Exactly one of the two is set."""

    user: str
    at: datetime
    match: str | None = None
    ids: frozenset[uuid.UUID] = frozenset()

    def covers(self, rec: Record) -> bool:
        """Whether ``rec`` is one of the episodes this forget asked to forget."""
        if rec.user != self.user:
            return False
        if self.match is None:
            return rec.id in self.ids
        return said_at(rec) < self.at and self.match in rec.text.casefold()


class ForgetMarks:
    """The marks of the last ``keep_days`` days, read from Postgres on first use (so a
    memory that starts with Postgres down learns them once it is back) and kept in
    step by :meth:`add` and :meth:`trim`; thread-safe.

    Parameters
    ----------
    connect : a pooled connection (:meth:`PgStore.connection`); Postgres being down
        raises :class:`~emily.memory.errors.StoreUnavailable`.
    keep_days : how long a mark is kept; 0: forgets leave none.
    """

    def __init__(self, connect: Connect, keep_days: float) -> None:
        self._connect = connect
        self.keep_days = keep_days
        self._lock = threading.Lock()
        self._marks: list[Mark] | None = None
        self._gate = RWLock(prefer_writer=True)

    def storing(self) -> AbstractContextManager[None]:
        """Held, shared with other inserts, by an insert from its :meth:`split` until
        what it kept is committed and indexed (see the module docstring)."""
        return self._gate.read()

    def forgetting(self) -> AbstractContextManager[None]:
        """Held alone by a forget from before its search until its mark is
        :meth:`noted` (see the module docstring)."""
        return self._gate.write()

    def _cutoff(self) -> datetime:
        return datetime.now(UTC) - timedelta(days=self.keep_days)

    def _read(self, conn: Conn) -> list[Mark]:
        rows = conn.execute(
            "SELECT user_name, at, match, episode_ids FROM memory_forget_marks "
            "WHERE at > %s ORDER BY id",
            (self._cutoff(),),
        ).fetchall()
        return [Mark(str(r[0]), r[1], r[2], frozenset(r[3] or ())) for r in rows]

    def _loaded(self) -> list[Mark]:
        """The live marks, read from Postgres the first time; lock held."""
        if self._marks is None:
            with self._connect() as conn:
                self._marks = self._read(conn)
        return self._marks

    def split(self, records: Sequence[Record]) -> tuple[list[Record], list[Record]]:
        """``records`` cut into those to store and those a mark withholds, each in order.

        Raises :class:`~emily.memory.errors.StoreUnavailable` while the marks cannot be
        read (Postgres down, before the first read): nothing may be stored unchecked.
        """
        if self.keep_days == 0:
            return list(records), []
        with self._lock:
            cutoff = self._cutoff()
            marks = [m for m in self._loaded() if m.at > cutoff]
        keep: list[Record] = []
        withheld: list[Record] = []
        for rec in records:
            (withheld if any(m.covers(rec) for m in marks) else keep).append(rec)
        return keep, withheld

    def add(
        self,
        conn: Conn,
        user: str,
        *,
        match: str | None = None,
        ids: Sequence[uuid.UUID] = (),
    ) -> Mark | None:
        """Write the mark of a forget of ``ids`` or ``match`` in ``conn``'s transaction
        (the forget's own); returns it for :meth:`noted` once that commits (``None`` when
        marks are off)."""
        if self.keep_days == 0:
            return None
        folded = match.casefold() if match is not None else None
        listed = None if folded is not None else sorted(set(ids))
        row = conn.execute(
            "INSERT INTO memory_forget_marks (user_name, match, episode_ids) "
            "VALUES (%s, %s, %s) RETURNING at",
            (user, folded, listed),
        ).fetchone()
        assert row is not None  # INSERT ... RETURNING gives its row
        return Mark(user, row[0], folded, frozenset(listed or ()))

    def noted(self, mark: Mark | None) -> None:
        """Take ``mark`` (from :meth:`add`) into the marks in use, its forget committed."""
        if mark is None:
            return
        with self._lock:
            if self._marks is not None:
                self._marks.append(mark)

    def trim(self) -> int:
        """Delete the marks older than ``keep_days`` (all of them when marks are off) and
        read back those kept; returns how many went."""
        cutoff = self._cutoff() if self.keep_days else datetime.now(UTC) + timedelta(days=1)
        with self._lock, self._connect() as conn:  # no noted() mark is lost meanwhile
            gone = conn.execute("DELETE FROM memory_forget_marks WHERE at <= %s", (cutoff,))
            self._marks = self._read(conn) if self.keep_days else []
        return int(gone.rowcount)

    def __len__(self) -> int:
        with self._lock:
            return len(self._marks) if self._marks is not None else 0
