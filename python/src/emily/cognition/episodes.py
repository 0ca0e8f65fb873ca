"""Storing one episode per cycle in memory, off the critical path, without losing any.

Episodes go to a single background worker. While memory is unreachable they wait in a
bounded queue (``pending_max``) and are sent, oldest first, as soon as a store succeeds
again. Only when the queue is full is the oldest episode dropped, and counted. While
memory's liveliness token is absent, a submit does not wake the worker (a store would
fail at once); the first submit after memory is back flushes everything pending.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

from emily.bus.schemas.memory import MAX_BATCH, EpisodeIn
from emily.cognition.clients import MemoryClient, PeerUnavailable
from emily.cognition.metrics import CognitionMetrics

log = logging.getLogger(__name__)


class EpisodeWriter:
    """Background writer of episodes with a retry queue (see the module docstring)."""

    def __init__(
        self,
        memory: MemoryClient | None,
        metrics: CognitionMetrics,
        timeout_s: float = 2.0,
        pending_max: int = 10_000,
    ) -> None:
        self.memory = memory
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.pending: deque[EpisodeIn] = deque()
        self.pending_max = pending_max
        self.dropped = 0
        self._lock = threading.Lock()
        self._scheduled = False
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="episodes")

    def status(self) -> str:
        """What :meth:`submit` will return: ``"queued"``, or ``"skipped"`` without a bus."""
        return "skipped" if self.memory is None else "queued"

    def submit(self, episode: EpisodeIn) -> str:
        """Queue ``episode``; returns ``"queued"`` (or ``"skipped"`` without a bus)."""
        if self.memory is None:
            return "skipped"
        reachable = self.memory.available()
        with self._lock:
            if len(self.pending) >= self.pending_max:
                self.pending.popleft()
                self.dropped += 1
                self.metrics.episodes.labels("dropped").inc()
            self.pending.append(episode)
            self.metrics.pending.set(len(self.pending))
            wake = reachable and not self._scheduled
            self._scheduled = self._scheduled or wake
        if wake:  # one flush at a time picks up everything pending
            self._pool.submit(self.flush)
        return "queued"

    def flush(self) -> int:
        """Send what is pending, oldest first; returns how many were stored."""
        if self.memory is None:
            return 0
        stored = 0
        while True:
            with self._lock:
                batch = list(islice(self.pending, MAX_BATCH))
                if not batch:
                    self._scheduled = False
                    return stored
            try:
                self.memory.store(batch, self.timeout_s)
            except PeerUnavailable as exc:
                log.info("episodes wait for memory (%d pending): %s", len(self.pending), exc)
                self.metrics.episodes.labels("deferred").inc()
                with self._lock:
                    self._scheduled = False
                return stored
            with self._lock:
                for _ in batch:
                    self.pending.popleft()
                self.metrics.pending.set(len(self.pending))
            self.metrics.episodes.labels("stored").inc(len(batch))
            stored += len(batch)

    def background(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` on the writer's thread (STDP adaptation, off the hot path)."""
        self._pool.submit(fn, *args)

    def close(self) -> None:
        """Try a last flush and stop the worker."""
        self._pool.submit(self.flush)
        self._pool.shutdown(wait=True)
