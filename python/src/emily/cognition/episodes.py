"""Storing each cycle's episodes in memory, off the critical path, without losing any.

A cycle's episodes go to a durable outbox (:class:`~emily.cognition.outbox.EpisodeOutbox`)
before its reply is sent (:meth:`EpisodeWriter.keep`: a local SQLite commit, no network),
so a turn the user saw answered survives cognition dying the moment after; a single
background worker sends them to memory, oldest first, in batches, once the reply is out
(:meth:`EpisodeWriter.deliver`). While memory is
unreachable they wait there, across restarts of cognition too, up to ``pending_max``;
only then is the oldest dropped, and counted. While memory's liveliness token is
absent, a submit does not wake the worker (a store would fail at once); the first
submit after memory is back flushes everything pending, and so does start-up.

A store that fails while memory is there (it missed its deadline, most often because
memory is busy storing what was sent before) is not resent at once nor on the next
submit: the writer waits ``backoff_s``, doubling on each failure up to ``backoff_max_s``,
and sends again with a deadline that doubles too, up to ``timeout_max_s``, so a slow
memory gets each batch once at a time rather than over and over. The retry runs on a
timer, so what is pending is delivered after memory recovers even if no cycle follows.

An episode memory refuses as malformed (``bad_request``) is never retried: a batch that
is refused is sent again one episode at a time, so only the bad one is dropped (with a
log line and the ``refused`` counter) and the good ones behind it are stored.

When memory is there but slower than the cycles, the outbox does not fill up to its
bound and drop: past four fifths of ``pending_max`` a submit waits (up to
``hold_max_s``, counted as ``held``) until the sender has made room, so cognition runs at
the pace memory can store. That wait is part of :meth:`~EpisodeWriter.deliver`, after
the reply: a reply never waits for memory. Only while memory is away does the bound drop
the oldest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from emily.bus.schemas.memory import MAX_BATCH, EpisodeIn
from emily.cognition.clients import EpisodeRefused, MemoryClient, PeerUnavailable
from emily.cognition.metrics import CognitionMetrics
from emily.cognition.outbox import EpisodeOutbox, Sync

log = logging.getLogger(__name__)

#: Seconds after a delivery before the emptied outbox's WAL is truncated
#: (:meth:`~emily.cognition.outbox.EpisodeOutbox.scrub`).
SCRUB_AFTER_S = 2.0


class EpisodeWriter:
    """Background writer of episodes through a durable outbox (see the module docstring).

    Parameters
    ----------
    memory : the memory client, or ``None`` without a bus (episodes are skipped).
    metrics : where stored, deferred, dropped and refused episodes are counted.
    timeout_s : deadline of one store (s), doubled after each failed store up to
        ``timeout_max_s``.
    pending_max : most episodes kept while memory is away.
    outbox : the outbox file; ``None`` keeps the queue in memory only.
    batch : most episodes per store (at most :data:`MAX_BATCH`).
    backoff_s, backoff_max_s : wait before the first retry after a failed store (s),
        doubled after each further failure up to ``backoff_max_s``.
    hold_max_s : longest a submit waits for room while memory is behind (s).
    sync : the outbox's durability, ``"normal"`` or ``"full"``
        (:class:`~emily.cognition.outbox.EpisodeOutbox`).
    """

    def __init__(
        self,
        memory: MemoryClient | None,
        metrics: CognitionMetrics,
        timeout_s: float = 2.0,
        pending_max: int = 10_000,
        outbox: Path | None = None,
        *,
        timeout_max_s: float = 60.0,
        batch: int = 100,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        hold_max_s: float = 30.0,
        sync: Sync = "normal",
    ) -> None:
        if not 1 <= batch <= MAX_BATCH:
            raise ValueError(f"batch must be in 1..{MAX_BATCH}, got {batch}")
        if not 0 < timeout_s <= timeout_max_s:
            raise ValueError(
                f"need 0 < timeout_s <= timeout_max_s, got {timeout_s}, {timeout_max_s}"
            )
        if not 0 < backoff_s <= backoff_max_s:
            raise ValueError(
                f"need 0 < backoff_s <= backoff_max_s, got {backoff_s}, {backoff_max_s}"
            )
        self.memory = memory
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.timeout_max_s = timeout_max_s
        self.batch = batch
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.failures = 0  # stores failed in a row
        self.sends = 0  # store calls made, retries included
        self._retry_at = 0.0  # monotonic time before which a submit does not resend
        self._timer: threading.Timer | None = None
        self._scrubber: threading.Timer | None = None
        self._closed = False
        self.pending = EpisodeOutbox(outbox if memory is not None else None, sync)
        self.pending_max = pending_max
        # backpressure: past this many pending, a submit waits (up to hold_max_s) while
        # memory is reachable but behind, instead of letting the bound drop the oldest
        self.pending_high = max(1, (pending_max * 4) // 5)
        self.hold_max_s = hold_max_s
        self.held = 0  # submits that waited for room
        self._room = threading.Condition()
        self.dropped = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._scheduled = False
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="episodes")
        self.metrics.pending.set(len(self.pending))
        if len(self.pending):  # left from the last run: deliver once memory is there
            self._wake()

    def status(self) -> str:
        """What :meth:`submit` will return: ``"queued"``, or ``"skipped"`` without a bus."""
        return "skipped" if self.memory is None else "queued"

    def submit(self, episode: EpisodeIn) -> str:
        """:meth:`keep` ``episode``, then :meth:`deliver`; returns what :meth:`keep` does."""
        status = self.keep([episode])
        self.deliver()
        return status

    def keep(self, episodes: Sequence[EpisodeIn]) -> str:
        """Write ``episodes`` to the outbox in one commit, and nothing else: no wait for
        room, no store request (a cycle calls this before its reply leaves). Returns
        ``"queued"`` (or ``"skipped"`` without a bus)."""
        if self.memory is None:
            return "skipped"
        dropped = self.pending.put_many(episodes, self.pending_max)
        if dropped:
            self.dropped += dropped
            self.metrics.episodes.labels("dropped").inc(dropped)
        return "queued"

    def deliver(self) -> None:
        """Have what :meth:`keep` wrote sent to memory in the background (a cycle calls
        this once its reply is out): waits for room while memory is behind (see
        :meth:`_wait_for_room`), then wakes the sender unless a failed store is backing
        off."""
        if self.memory is None:
            return
        self._wait_for_room()
        self.metrics.pending.set(len(self.pending))
        if self.memory.available() and time.monotonic() >= self._retry_at:
            self._wake()
        if self.pending.checkpoint_due() and not self._closed:
            self.background(self.pending.checkpoint)

    def _wait_for_room(self) -> None:
        """Hold the caller while the outbox is past :attr:`pending_high` and memory is
        there but behind, so the cycles slow to memory's pace rather than the bound
        dropping episodes. The caller is a cycle's after-reply step: its own reply is
        already out (its episodes already kept); the wait delays the next cycle that
        worker runs. Memory absent (or ``hold_max_s`` passed): no wait, the bound
        decides."""
        assert self.memory is not None
        if len(self.pending) < self.pending_high or not self.memory.available():
            return
        self.held += 1
        self.metrics.episodes.labels("held").inc()
        self._wake()
        until = time.monotonic() + self.hold_max_s
        with self._room:
            while (
                len(self.pending) >= self.pending_high
                and not self._closed
                and self.memory.available()
                and (left := until - time.monotonic()) > 0
            ):
                self._room.wait(min(left, 0.5))

    def deadline_s(self) -> float:
        """The deadline of the next store: ``timeout_s`` doubled per failure in a row."""
        return min(self.timeout_max_s, self.timeout_s * 2.0 ** min(self.failures, 30))

    def _wake(self) -> None:
        with self._lock:
            if self._scheduled or self._closed:
                return  # one flush at a time picks up everything pending
            self._scheduled = True
        self._pool.submit(self.flush)

    def _retry_later(self) -> float:
        """After a failed store: count it and return how long to back off (s)."""
        self.failures += 1
        delay = min(self.backoff_max_s, self.backoff_s * 2.0 ** min(self.failures - 1, 30))
        assert self.memory is not None
        # memory absent: its return (the next submit that sees it) may flush at once
        self._retry_at = time.monotonic() + delay if self.memory.available() else 0.0
        return delay

    def _arm(self, delay: float) -> None:
        """Flush again in ``delay`` s, so nothing waits for a submit that may not come."""
        with self._lock:
            if self._closed:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(delay, self._wake)
            self._timer.daemon = True
            self._timer.start()

    def flush(self) -> int:
        """Send what is pending, oldest first; returns how many were stored."""
        if self.memory is None:
            return 0
        stored, retry = 0, None
        try:
            with self._flushing:  # one sender at a time, so no episode goes out twice
                while items := self.pending.peek(self.batch):
                    done, retry = self._send(items)
                    stored += done
                    if retry is not None:  # the rest waits for memory
                        break
        finally:
            with self._lock:
                self._scheduled = False
            self.metrics.pending.set(len(self.pending))
        if retry is not None:  # armed only now, so its wake is not lost to this flush
            self._arm(retry)
        elif stored:
            self._scrub_soon()
        return stored

    def _scrub_soon(self) -> None:
        """After a delivery: have the outbox's WAL emptied once the queue is empty,
        :data:`SCRUB_AFTER_S` seconds from now (one pending at a time), so a steady
        stream of cycles pays for that flush at most that often."""
        with self._lock:
            if self._closed or self._scrubber is not None:
                return

            def due() -> None:
                with self._lock:
                    self._scrubber = None
                    if self._closed:
                        return
                self.background(self.pending.scrub)

            self._scrubber = threading.Timer(SCRUB_AFTER_S, due)
            self._scrubber.daemon = True
            self._scrubber.start()

    def _send(self, items: list[tuple[int, EpisodeIn]]) -> tuple[int, float | None]:
        """Store ``items``: how many were stored, and ``None`` if memory answered, or how
        long to wait before the next try if it did not."""
        assert self.memory is not None
        deadline = self.deadline_s()
        self.sends += 1
        try:
            self.memory.store([ep for _, ep in items], deadline)
        except PeerUnavailable as exc:
            delay = self._retry_later()
            log.info(
                "episodes wait for memory (%d pending, %d failed stores in a row, next in"
                " %.1f s with a %.1f s deadline): %s",
                len(self.pending),
                self.failures,
                max(0.0, self._retry_at - time.monotonic()),
                self.deadline_s(),
                exc,
            )
            self.metrics.episodes.labels("deferred").inc()
            return 0, delay
        except EpisodeRefused as exc:
            self.failures, self._retry_at = 0, 0.0  # an answer: memory keeps up
            if len(items) > 1:  # find the bad one; the others are stored
                stored = 0
                for item in items:
                    done, retry = self._send([item])
                    stored += done
                    if retry is not None:
                        return stored, retry
                return stored, None
            log.warning("memory refused episode %s, dropped: %s", items[0][1].id, exc)
            self.refused += 1
            self.metrics.episodes.labels("refused").inc()
            self.pending.remove([items[0][0]])
            return 0, None
        self.failures, self._retry_at = 0, 0.0
        self.pending.remove([seq for seq, _ in items])
        self.metrics.episodes.labels("stored").inc(len(items))
        with self._room:
            self._room.notify_all()
        return len(items), None

    def background(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` on the writer's thread (STDP adaptation, the outbox's
        checkpoint: off the hot path)."""
        self._pool.submit(fn, *args)

    def close(self) -> None:
        """Try a last flush, stop the worker, close the outbox (what is left stays)."""
        with self._lock:
            self._closed = True
            for timer in (self._timer, self._scrubber):
                if timer is not None:
                    timer.cancel()
        with self._room:
            self._room.notify_all()
        self._pool.submit(self.flush)
        self._pool.shutdown(wait=True)
        self.pending.close()
