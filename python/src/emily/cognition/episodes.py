"""Storing one episode per cycle in memory, off the critical path, without losing any.

Episodes go to a durable outbox (:class:`~emily.cognition.outbox.EpisodeOutbox`) and a
single background worker sends them, oldest first, in batches. While memory is
unreachable they wait there, across restarts of cognition too, up to ``pending_max``;
only then is the oldest dropped, and counted. While memory's liveliness token is
absent, a submit does not wake the worker (a store would fail at once); the first
submit after memory is back flushes everything pending, and so does start-up.

An episode memory refuses as malformed (``bad_request``) is never retried: a batch that
is refused is sent again one episode at a time, so only the bad one is dropped (with a
log line and the ``refused`` counter) and the good ones behind it are stored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from emily.bus.schemas.memory import MAX_BATCH, EpisodeIn
from emily.cognition.clients import EpisodeRefused, MemoryClient, PeerUnavailable
from emily.cognition.metrics import CognitionMetrics
from emily.cognition.outbox import EpisodeOutbox

log = logging.getLogger(__name__)


class EpisodeWriter:
    """Background writer of episodes through a durable outbox (see the module docstring).

    Parameters
    ----------
    memory : the memory client, or ``None`` without a bus (episodes are skipped).
    metrics : where stored, deferred, dropped and refused episodes are counted.
    timeout_s : deadline of one store (s).
    pending_max : most episodes kept while memory is away.
    outbox : the outbox file; ``None`` keeps the queue in memory only.
    """

    def __init__(
        self,
        memory: MemoryClient | None,
        metrics: CognitionMetrics,
        timeout_s: float = 2.0,
        pending_max: int = 10_000,
        outbox: Path | None = None,
    ) -> None:
        self.memory = memory
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.pending = EpisodeOutbox(outbox if memory is not None else None)
        self.pending_max = pending_max
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
        """Queue ``episode`` durably; returns ``"queued"`` (or ``"skipped"`` without a bus)."""
        if self.memory is None:
            return "skipped"
        dropped = self.pending.put(episode, self.pending_max)
        if dropped:
            self.dropped += dropped
            self.metrics.episodes.labels("dropped").inc(dropped)
        self.metrics.pending.set(len(self.pending))
        if self.memory.available():
            self._wake()
        return "queued"

    def _wake(self) -> None:
        with self._lock:
            if self._scheduled:
                return  # one flush at a time picks up everything pending
            self._scheduled = True
        self._pool.submit(self.flush)

    def flush(self) -> int:
        """Send what is pending, oldest first; returns how many were stored."""
        if self.memory is None:
            return 0
        stored = 0
        try:
            with self._flushing:  # one sender at a time, so no episode goes out twice
                while items := self.pending.peek(MAX_BATCH):
                    done, reachable = self._send(items)
                    stored += done
                    if not reachable:  # the rest waits for memory
                        break
        finally:
            with self._lock:
                self._scheduled = False
            self.metrics.pending.set(len(self.pending))
        return stored

    def _send(self, items: list[tuple[int, EpisodeIn]]) -> tuple[int, bool]:
        """Store ``items``: how many were stored, and whether memory is still reachable."""
        assert self.memory is not None
        try:
            self.memory.store([ep for _, ep in items], self.timeout_s)
        except PeerUnavailable as exc:
            log.info("episodes wait for memory (%d pending): %s", len(self.pending), exc)
            self.metrics.episodes.labels("deferred").inc()
            return 0, False
        except EpisodeRefused as exc:
            if len(items) > 1:  # find the bad one; the others are stored
                stored = 0
                for item in items:
                    done, reachable = self._send([item])
                    stored += done
                    if not reachable:
                        return stored, False
                return stored, True
            log.warning("memory refused episode %s, dropped: %s", items[0][1].id, exc)
            self.refused += 1
            self.metrics.episodes.labels("refused").inc()
            self.pending.remove([items[0][0]])
            return 0, True
        self.pending.remove([seq for seq, _ in items])
        self.metrics.episodes.labels("stored").inc(len(items))
        return len(items), True

    def background(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` on the writer's thread (STDP adaptation, off the hot path)."""
        self._pool.submit(fn, *args)

    def close(self) -> None:
        """Try a last flush, stop the worker, close the outbox (what is left stays)."""
        self._pool.submit(self.flush)
        self._pool.shutdown(wait=True)
        self.pending.close()
