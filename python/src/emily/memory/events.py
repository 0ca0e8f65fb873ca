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

The log is bounded (:class:`Retention`, ``events_keep_days`` and ``events_keep_max``):
the maintenance loop trims its oldest events in batches (:meth:`EventLog.maintain`),
never past what the relay has not published, and moves the trim point
(``0006_event_trim.sql``) that every page reports, so a reader whose cursor is older
knows it missed events. Payloads hold ids, tiers and media hashes, never an episode's
text or a fact's value, so forgetting leaves nothing in the log to scrub.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from emily.bus.schemas.lifecycle import MAX_PAGE, EventsReply, MemoryEvent
from emily.bus.schemas.memory import MemoryOperation
from emily.memory.errors import StoreUnavailable

if TYPE_CHECKING:
    from emily.memory.metrics import MemoryMetrics

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
#: Seconds between trims of the log by the maintenance loop.
TRIM_EVERY_S = 60.0


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


# One statement, so one snapshot: the page, the log's end and the trim point agree even
# while a trim or a writer commits in between (two statements could report an old trim
# point next to a page the newer trim already emptied, a gap the reader cannot see).
_READ = (
    "SELECT c.last, t.through, e.seq, e.op, e.at, e.user_name, e.episode_id, e.fact_id, "
    "e.detail FROM memory_event_counter c CROSS JOIN memory_event_trim t LEFT JOIN LATERAL "
    "(SELECT * FROM memory_events WHERE seq > %s ORDER BY seq LIMIT %s) e ON true "
    "ORDER BY e.seq"
)


def read(conn: Conn, since: int = 0, limit: int = MAX_PAGE) -> EventsReply:
    """Events with ``seq > since``, oldest first, at most ``limit`` (``1..1000``).

    ``trimmed`` in the reply is the log's trim point: when it is above ``since`` the
    events in between are gone (see :func:`trim`).
    """
    rows = conn.execute(_READ, (since, limit)).fetchall()
    if not rows:
        raise StoreUnavailable("the event log's tables are missing; run memory's migrations")
    events = [
        MemoryEvent(
            seq=r[2], op=r[3], at=r[4], user=r[5], episode_id=r[6], fact_id=r[7], detail=r[8]
        )
        for r in rows
        if r[2] is not None
    ]
    return EventsReply(events=events, last=int(rows[0][0]), trimmed=int(rows[0][1]))


def trimmed(conn: Conn) -> int:
    """The log's trim point: every event up to it is gone (0: none trimmed)."""
    row = conn.execute("SELECT through FROM memory_event_trim").fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class Retention:
    """How much of the log is kept.

    Attributes
    ----------
    keep_days : events older than this go, in days (0: no age bound).
    keep_max : at most this many newest events stay (0: no count bound).
    batch : most events deleted in one transaction (rows), so no lock is held long.
    """

    keep_days: float = 30.0
    keep_max: int = 1_000_000
    batch: int = 10_000

    def __post_init__(self) -> None:
        if self.keep_days < 0 or self.keep_max < 0 or self.batch < 1:
            raise ValueError(f"keep_days and keep_max must be >= 0 and batch >= 1: {self}")


def _cut(conn: Conn, through: int, ret: Retention) -> int:
    """The trim point ``ret`` asks for, at most one batch past ``through``."""
    last = last_seq(conn)
    cut = max(through, last - ret.keep_max) if ret.keep_max else through
    if ret.keep_days:
        # the kept events stay a gap-free run after the trim point, so age trims the
        # oldest events up to the first one young enough, even if a later one is older
        rows = conn.execute(
            "SELECT seq, at < now() - make_interval(secs => %s) FROM memory_events "
            "WHERE seq > %s ORDER BY seq LIMIT %s",
            (ret.keep_days * 86400.0, cut, ret.batch),
        ).fetchall()
        for seq, old in rows:
            if not old:
                break
            cut = int(seq)
    return min(cut, through + ret.batch)


def trim(conn: Conn, ret: Retention, upto: int | None = None) -> int:
    """Delete the events ``ret`` no longer keeps, never past ``upto``, in batches of
    ``ret.batch`` (each its own transaction on the autocommit ``conn``); returns how
    many went.

    ``upto`` is the newest event every known reader has read (the relay's position);
    ``None`` means no bound but ``ret``.
    """
    gone = 0
    while True:
        with conn.transaction():
            row = conn.execute("SELECT through FROM memory_event_trim FOR UPDATE").fetchone()
            through = int(row[0]) if row else 0
            cut = _cut(conn, through, ret)
            if upto is not None:
                cut = min(cut, upto)
            if cut <= through:
                return gone
            done = conn.execute(
                "DELETE FROM memory_events WHERE seq > %s AND seq <= %s", (through, cut)
            ).rowcount
            conn.execute("UPDATE memory_event_trim SET through = %s", (cut,))
        gone += max(done, 0)


def unlogged(conn: Conn, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Of ``ids``, the episodes whose every event was trimmed: the log no longer says
    where they are (empty while nothing was trimmed)."""
    if not ids or not trimmed(conn):
        return set()
    rows = conn.execute(
        "SELECT k FROM unnest(%s::uuid[]) k WHERE NOT EXISTS "
        "(SELECT 1 FROM memory_events m WHERE m.episode_id = k)",
        (list(ids),),
    ).fetchall()
    return {r[0] for r in rows}


def kept(conn: Conn) -> int:
    """Events in the log now (the newest sequence number less the trim point)."""
    return last_seq(conn) - trimmed(conn)


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
        self.kept = 0  # events in the log at the last trim
        self.trimmed = 0  # events this process trimmed
        self._trimmed_at: float | None = None

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

    # -------------------------------------------------------------- retention
    def trim(self, ret: Retention) -> int:
        """Trim the log to ``ret``; returns the events deleted.

        While the relay runs it is the log's one reader this process knows of, so
        nothing it has not published yet goes (and nothing at all before it knows the
        log's end). Readers elsewhere see ``trimmed`` in their reply.
        """
        upto = self._relayed if self._thread is not None else None
        if self._thread is not None and upto is None:
            return 0
        with self.connection() as conn:
            gone = trim(conn, ret, upto)
            self.kept = kept(conn)
        self.trimmed += gone
        return gone

    def maintain(self, ret: Retention, metrics: MemoryMetrics) -> int:
        """:meth:`trim` at most every :data:`TRIM_EVERY_S` seconds (the maintenance
        loop calls it each turn) and export the log's size; returns events deleted."""
        now = time.monotonic()
        if self._trimmed_at is not None and now - self._trimmed_at < TRIM_EVERY_S:
            return 0
        self._trimmed_at = now
        gone = self.trim(ret)
        metrics.events_trimmed.inc(gone)
        metrics.events_kept.set(self.kept)
        return gone

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
