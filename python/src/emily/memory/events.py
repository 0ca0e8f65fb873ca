"""The event log: memory's state changes in Postgres, numbered without gaps.

Every change (``store``, ``merge``, ``correct``, ``forget``, ``fact``, ``supersede``,
``promote``, ``demote``) is appended with :func:`append` inside the transaction that
makes it, so the log and the data never disagree: a rolled-back change leaves no event,
and its sequence numbers are taken again by the next one (``0004_events.sql`` explains
the counter row). Tier moves happen on the recall path, where a Postgres write per
recall would cost more than the recall itself; they are buffered and appended in
batches (:meth:`EventLog.flush_moves`, every quarter second while the relay runs).

:class:`EventLog`'s relay thread tails the table and publishes what was committed, in
sequence order, on ``events/memory.operations`` with :attr:`MemoryOperation.seq` set;
a subscriber that sees a gap in ``seq`` reads what it missed with :func:`read`
(``memory/events``, ``emily memory events --since SEQ``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from emily.bus.schemas.lifecycle import MAX_PAGE, EventsReply, MemoryEvent
from emily.bus.schemas.memory import MemoryOperation
from emily.memory.errors import StoreUnavailable

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
Scalar = str | int | float | bool | None
Publish = Callable[[Sequence[MemoryOperation]], None]
#: Ops that change state and are logged (reads, ``hit`` and ``miss``, are not).
LOGGED = frozenset(
    ("store", "merge", "correct", "forget", "fact", "supersede", "promote", "demote")
)
#: Most buffered tier moves; beyond it the oldest are dropped (and counted) until a flush.
MAX_PENDING_MOVES = 100_000
RELAY_PERIOD_S = 0.25


@dataclass(frozen=True)
class Change:
    """One event to log: ``op`` (one of :data:`LOGGED`) and what it touched.

    ``detail`` holds scalars only (tier moves: ``from`` and ``to``; a forget: the
    episode's ``media_sha256`` and whether that media is now ``media_orphaned``).
    """

    op: str
    user: str | None = None
    episode_id: uuid.UUID | None = None
    fact_id: uuid.UUID | None = None
    detail: Mapping[str, Scalar] = field(default_factory=dict)


def append(conn: Conn, changes: Sequence[Change]) -> int | None:
    """Append ``changes`` to the log in ``conn``'s open transaction, in order.

    Returns the sequence number of the last one (``None`` when there are none). The
    counter row stays locked until the transaction ends, so keep the rest of it short.

    Raises
    ------
    ValueError
        An op that is not logged (a read, or a typo).
    """
    if not changes:
        return None
    bad = {c.op for c in changes} - LOGGED
    if bad:
        raise ValueError(f"not a logged memory event: {sorted(bad)}; use one of {sorted(LOGGED)}")
    row = conn.execute(
        "SELECT emily_log_events(%s::text[], %s::text[], %s::uuid[], %s::uuid[], %s::jsonb[])",
        (
            [c.op for c in changes],
            [c.user for c in changes],
            [c.episode_id for c in changes],
            [c.fact_id for c in changes],
            [Jsonb(dict(c.detail)) for c in changes],
        ),
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def last_seq(conn: Conn) -> int:
    """The newest sequence number committed (0 for an empty log)."""
    row = conn.execute("SELECT last FROM memory_event_counter").fetchone()
    return int(row[0]) if row else 0


def read(conn: Conn, since: int = 0, limit: int = MAX_PAGE) -> EventsReply:
    """Events with ``seq > since``, oldest first, at most ``limit`` (``1..1000``)."""
    rows = conn.execute(
        "SELECT seq, op, at, user_name, episode_id, fact_id, detail FROM memory_events "
        "WHERE seq > %s ORDER BY seq LIMIT %s",
        (since, limit),
    ).fetchall()
    newest = last_seq(conn)
    events = [
        MemoryEvent(
            seq=r[0], op=r[1], at=r[2], user=r[3], episode_id=r[4], fact_id=r[5], detail=r[6]
        )
        for r in rows
    ]
    return EventsReply(events=events, last=newest)


def operation(event: MemoryEvent) -> MemoryOperation:
    """The ``memory.operations`` form of a logged event (``seq`` set)."""
    src, dst = event.detail.get("from"), event.detail.get("to")
    return MemoryOperation.model_validate(
        {
            "op": event.op,
            "seq": event.seq,
            "user": event.user,
            "episode_id": event.episode_id,
            "fact_id": event.fact_id,
            "from_tier": src if isinstance(src, str) else None,
            "to_tier": dst if isinstance(dst, str) else None,
            "at": event.at,
        }
    )


class EventLog:
    """Buffered tier moves and the relay of committed events to the bus.

    Parameters
    ----------
    connection : a context manager factory lending a pooled autocommit connection
        (:meth:`PgStore.connection`).
    """

    def __init__(self, connection: Callable[[], Any]) -> None:
        self.connection = connection
        self._moves: list[Change] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self.dropped_moves = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._relayed: int | None = 0

    # -------------------------------------------------------------- moves
    def moved(self, ops: Sequence[MemoryOperation]) -> None:
        """Buffer the ``promote``/``demote`` ops of a tier pass for the next flush."""
        moves = [
            Change(
                o.op,
                episode_id=o.episode_id,
                detail={"from": o.from_tier, "to": o.to_tier},
            )
            for o in ops
            if o.op in ("promote", "demote")
        ]
        if not moves:
            return
        with self._lock:
            self._moves.extend(moves)
            over = len(self._moves) - MAX_PENDING_MOVES
            if over > 0:  # Postgres away for long: keep the newest, say so in rebuild
                del self._moves[:over]
                self.dropped_moves += over
        self._wake.set()

    def pending_moves(self) -> int:
        """Tier moves not yet in the log."""
        with self._lock:
            return len(self._moves)

    def flush_moves(self) -> int:
        """Append the buffered moves in one transaction; returns how many.

        Postgres being down keeps them buffered (:class:`StoreUnavailable` is raised).
        """
        with self._flushing:
            with self._lock:
                moves, self._moves = self._moves, []
            if not moves:
                return 0
            try:
                with self.connection() as conn, conn.transaction():
                    append(conn, moves)
            except (StoreUnavailable, psycopg.Error):
                with self._lock:
                    self._moves[:0] = moves
                raise
        self._wake.set()
        return len(moves)

    # -------------------------------------------------------------- relay
    def notify(self) -> None:
        """Wake the relay: a change was just committed."""
        self._wake.set()

    def start(self, publish: Publish) -> None:
        """Relay events committed from now on to ``publish``, in sequence order."""
        try:
            with self.connection() as conn:
                self._relayed = last_seq(conn)
        except StoreUnavailable:  # the loop takes the log's end once Postgres is back
            self._relayed = None

        def loop() -> None:
            while not self._stop.is_set():
                self._wake.wait(RELAY_PERIOD_S)
                self._wake.clear()
                try:
                    if self._relayed is None:
                        with self.connection() as conn:
                            self._relayed = last_seq(conn)
                    self.flush_moves()
                    self._relay(publish)
                except (StoreUnavailable, psycopg.Error) as exc:
                    log.warning("event relay waits for Postgres: %s", exc)
                    self._stop.wait(1.0)
                except Exception:  # keep relaying: a subscriber can still catch up by seq
                    log.exception("event relay failed; retrying")
                    self._stop.wait(1.0)

        self._thread = threading.Thread(target=loop, name="memory-events", daemon=True)
        self._thread.start()

    @property
    def relayed(self) -> int | None:
        """The newest sequence number published (``None`` until the log's end is known)."""
        return self._relayed

    def _relay(self, publish: Publish) -> None:
        while self._relayed is not None:
            with self.connection() as conn:
                page = read(conn, self._relayed, MAX_PAGE)
            if not page.events:
                return
            publish([operation(e) for e in page.events])
            self._relayed = page.events[-1].seq

    def close(self) -> None:
        """Stop the relay and append the moves still buffered (if Postgres is up)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.flush_moves()
        except (StoreUnavailable, psycopg.Error) as exc:
            log.warning("%d tier moves not logged at close (%s)", self.pending_moves(), exc)
