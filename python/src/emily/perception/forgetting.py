"""Media leaves the store when memory forgets the last episode that named it.

Memory publishes every state change on ``events/memory.operations`` with its event-log
sequence number. The published ``forget`` carries only the episode's id; the log's entry
(``memory/events``) has the episode's ``media_sha256`` and ``media_orphaned`` (no other
episode names that media). So a ``forget`` wakes :class:`MediaJanitor`, which reads the
log from its cursor to the newest entry and deletes each orphaned file.

The cursor (the last sequence number read) is kept in ``<media root>/.forget-cursor``,
so forgets that happened while perception was down are caught up at start; a first
start has no cursor and begins at the first ``forget`` it hears; a log that ends before
the cursor is a new one (memory's database was replaced) and is read from its start. A
log that cannot be read (memory absent) is retried on the next ``forget`` and at the
next start.

Memory trims its log (``events_keep_days``, ``events_keep_max``). A reply whose
``trimmed`` is above the cursor means forgets were missed: the janitor then reconciles,
asking memory which of its files an episode still names (``EventsRequest.media``) and
deleting the others, and goes on from the trim point. A file written in the last
``grace_s`` seconds is spared, as its episode may not be stored yet.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import zenoh

from emily.bus import Keys
from emily.bus.endpoints import EVENTS, MEMORY_OPERATIONS
from emily.bus.messages import decode
from emily.bus.schemas.context import MEDIA_KEY, MEDIA_ORPHANED
from emily.bus.schemas.lifecycle import MAX_PAGE, EventsRequest, MemoryEvent
from emily.bus.schemas.memory import MemoryOperations
from emily.errors import BusError, PayloadError
from emily.perception.media import MediaStore

log = logging.getLogger(__name__)
CURSOR = ".forget-cursor"
#: Seconds a freshly kept file is spared by a reconcile.
GRACE_S = 600.0


def orphaned(event: MemoryEvent) -> str | None:
    """The sha256 of the media ``event`` leaves without an episode, else ``None``."""
    sha = event.detail.get(MEDIA_KEY)
    if event.op != "forget" or not isinstance(sha, str):
        return None
    return sha if event.detail.get(MEDIA_ORPHANED) is True else None


class MediaJanitor:
    """Deletes orphaned media as memory forgets its episodes, until :meth:`close`.

    Parameters
    ----------
    media : the content-addressed store. session : open Zenoh session (not owned).
    keys : the node whose memory is followed. timeout_s : deadline of one log read (s).
    grace_s : a reconcile spares files younger than this (s): their episodes may still
        be on their way to memory.
    """

    def __init__(
        self,
        media: MediaStore,
        session: zenoh.Session,
        keys: Keys,
        timeout_s: float = 10.0,
        grace_s: float = GRACE_S,
    ) -> None:
        if grace_s < 0:
            raise ValueError(f"grace_s must be >= 0 seconds, got {grace_s}")
        self.media = media
        self.session = session
        self.keys = keys
        self.timeout_s = timeout_s
        self.grace_s = grace_s
        self.removed = 0  # files deleted since start (catch-ups and reconciles)
        self.reconciles = 0  # full reconciles after a trimmed log
        self._path = media.root / CURSOR
        self._cursor = self._load()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._hint: int | None = None  # the earliest unread forget heard without a cursor
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="media-janitor", daemon=True)
        self._sub: Any = session.declare_subscriber(MEMORY_OPERATIONS.key(keys), self._on_sample)
        if self._cursor is not None:
            self._wake.set()  # catch up on what was forgotten while we were down
        self._thread.start()

    @property
    def cursor(self) -> int | None:
        """The last log sequence number read (``None`` before the first forget)."""
        return self._cursor

    def _load(self) -> int | None:
        try:
            text = self._path.read_text(encoding="ascii").strip()
        except OSError:
            return None
        if not text.isdigit():
            log.warning("%s holds %r, not a sequence number: starting afresh", self._path, text)
            return None
        return int(text)

    def _save(self, seq: int) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_suffix(".part")
            tmp.write_text(str(seq), encoding="ascii")
            tmp.replace(self._path)
        except OSError as exc:  # a read-only store still deletes; it re-reads at start
            log.warning("cannot save the forget cursor in %s: %s", self._path, exc)

    def _on_sample(self, sample: zenoh.Sample) -> None:
        try:
            msg = decode(MemoryOperations, sample.payload.to_bytes())
        except PayloadError as exc:
            log.warning("ignored a bad memory.operations message: %s", exc)
            return
        seqs = [op.seq for op in msg.ops if op.op == "forget" and op.seq is not None]
        if not seqs:
            return
        with self._lock:
            if self._cursor is None:
                first = min(seqs) - 1
                self._hint = first if self._hint is None else min(self._hint, first)
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                self.catch_up()
            except BusError as exc:
                log.warning("memory's event log cannot be read now (%s); retrying later", exc)
            except Exception:
                log.exception("deleting forgotten media failed")

    def catch_up(self) -> int:
        """Read the log from the cursor to its newest entry, deleting orphaned media;
        returns the files deleted.

        Raises
        ------
        BusError
            When memory does not answer ``memory/events``.
        """
        with self._lock:
            since = self._cursor if self._cursor is not None else self._hint
        if since is None:
            return 0
        deleted = 0
        while True:
            reply = EVENTS.call(
                self.session,
                self.keys,
                EventsRequest(since=since, limit=MAX_PAGE),
                timeout_s=self.timeout_s,
            )
            if reply.last < since:  # a new log (memory's database was replaced): reread it
                log.warning(
                    "memory's event log ends at %d, before our cursor %d", reply.last, since
                )
                since = 0
                continue
            if reply.trimmed > since:  # forgets after the cursor left the log unread
                log.warning(
                    "memory's event log was trimmed to %d, past our cursor %d: reconciling "
                    "the media store with memory",
                    reply.trimmed,
                    since,
                )
                deleted += self.reconcile()
                since = reply.trimmed
                continue
            for event in reply.events:
                sha = orphaned(event)
                if sha is not None and self.media.remove(sha):
                    deleted += 1
                    self.removed += 1
                    log.info(
                        "deleted media %s: its episode %s was forgotten", sha, event.episode_id
                    )
                since = max(since, event.seq)
            with self._lock:
                self._cursor = since
            self._save(since)
            if not reply.events or since >= reply.last:
                break
        return deleted

    def reconcile(self) -> int:
        """Delete every stored file no episode names any more (sparing those younger
        than ``grace_s``); returns the files deleted.

        Raises
        ------
        BusError
            When memory does not answer ``memory/events``.
        """
        cutoff = time.time() - self.grace_s
        old: list[str] = []
        for path in self.media.files():
            try:
                if path.stat().st_mtime < cutoff:
                    old.append(path.name)
            except FileNotFoundError:  # evicted meanwhile
                continue
        deleted = 0
        for i in range(0, len(old), MAX_PAGE):
            batch = old[i : i + MAX_PAGE]
            req = EventsRequest(limit=1, media=batch)
            named = set(EVENTS.call(self.session, self.keys, req, timeout_s=self.timeout_s).named)
            for sha in batch:
                if sha not in named and self.media.remove(sha):
                    deleted += 1
                    self.removed += 1
                    log.info("deleted media %s: no episode names it any more", sha)
        self.reconciles += 1
        return deleted

    def close(self) -> None:
        """Stop following memory (the cursor stays on disk)."""
        self._sub.undeclare()
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
