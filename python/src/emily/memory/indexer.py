"""Keeping the in-process search index (:mod:`emily.memory.index`) in step with L3.

The :class:`Indexer` loads the saved index (or starts an empty one) and reconciles it
with Postgres on a background thread, so the service starts serving at once: until
the index is :attr:`~Indexer.ready`, recalls go to Postgres. Stores add to the index as
soon as Postgres has committed them, also while the first build runs, and the build
skips what is already there. Saves happen on a period and at close.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from emily.bus.schemas.memory import RecallFilters
from emily.memory.errors import StoreUnavailable
from emily.memory.index import AnnIndex, HnswParams, IndexUnavailable, Vector
from emily.memory.record import Record
from emily.memory.store import PgStore

log = logging.getLogger(__name__)
CHUNK = 5000


class Indexer:
    """The in-process HNSW and its build, sync and save.

    Parameters
    ----------
    store : L3, the source of truth.
    root : directory of the saved index (``<memory state>/index``).
    params : HNSW build parameters (the same ``M`` / ``ef_construction`` as Postgres').
    ef_search : default search breadth.
    save_every_s : seconds between saves of a changed index.
    """

    def __init__(
        self,
        store: PgStore,
        root: Path,
        params: HnswParams,
        *,
        ef_search: int,
        save_every_s: float = 600.0,
    ) -> None:
        self.store = store
        self.root = root
        self.params = params
        self.ef_search = ef_search
        self.save_every_s = save_every_s
        self.index = AnnIndex(params, ef_search=ef_search)
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_save = time.monotonic()
        self.build_s = 0.0

    # ------------------------------------------------------------- build
    def start(self) -> None:
        """Load or build the index on a background thread."""
        self._thread = threading.Thread(target=self._build, name="memory-index", daemon=True)
        self._thread.start()

    def _vectors_of(self, ids: list[uuid.UUID]) -> Iterator[tuple[Sequence[uuid.UUID], Vector]]:
        for i in range(0, len(ids), CHUNK):
            if self._stop.is_set():
                return
            records = self.store.fetch(ids[i : i + CHUNK])
            if records:
                keys = list(records)
                yield keys, np.stack([records[k].embedding for k in keys])

    def _build(self) -> None:
        start = time.perf_counter()
        loaded = AnnIndex.load(self.root, self.params, ef_search=self.ef_search)
        if loaded is not None:
            # a store that went to the old object while the file was read was committed
            # before the snapshot below, so the reconcile adds it again
            self.index = loaded
        for attempt in range(1, 1000):
            try:
                scope_of = self.store.scopes()
                wanted = set(scope_of)
                gone = [k for k in self.index.label_of if k not in wanted]
                # an id stored after the snapshot is in the index but not in `wanted`
                confirmed = set(gone) - self.store.existing(gone) if gone else set()
                added, removed = self.index.reconcile(
                    wanted | (set(self.index.label_of) - confirmed), self._vectors_of
                )
                self.index.set_scopes(scope_of)
                break
            except StoreUnavailable as exc:
                log.warning("index build waits for Postgres (attempt %d): %s", attempt, exc)
                if self._stop.wait(min(30.0, attempt)):
                    return
        else:  # pragma: no cover - Postgres away for hours
            return
        if self._stop.is_set():
            return
        self.build_s = time.perf_counter() - start
        self.ready.set()
        log.info(
            "search index ready: %d episodes (%s, +%d, -%d) in %.1f s",
            len(self.index),
            "loaded" if loaded is not None else "built",
            added,
            removed,
            self.build_s,
        )
        if added or removed or loaded is None:
            self.save()

    # ------------------------------------------------------------- use
    def add(self, records: Sequence[Record]) -> None:
        """Index records Postgres has just committed."""
        if records:
            self.index.add(
                [r.id for r in records],
                np.stack([r.embedding for r in records]),
                scopes=[(r.user, r.agent, r.role, r.act, r.session) for r in records],
            )

    def remove(self, ids: Sequence[uuid.UUID]) -> int:
        """Drop forgotten episodes from the index; returns how many it held."""
        return self.index.remove(ids)

    def search(
        self, query: Vector, k: int, ef_search: int | None = None
    ) -> list[tuple[uuid.UUID, float]] | None:
        """Nearest ``(id, cosine)`` pairs, or ``None`` when Postgres must answer."""
        found = self.search_many(np.asarray(query).reshape(1, -1), k, ef_search)
        return None if found is None else found[0]

    def search_many(
        self, queries: Vector, k: int, ef_search: int | None = None
    ) -> list[list[tuple[uuid.UUID, float]]] | None:
        """:meth:`search` for each row of ``queries`` ``(b, 384)``; both cores when b > 2."""
        if not self.ready.is_set():
            return None
        try:
            return self.index.search_many(
                queries, k, ef_search, threads=2 if len(queries) > 2 else 1
            )
        except IndexUnavailable as exc:
            log.warning("%s; asking Postgres", exc)
            return None

    def search_scoped(
        self,
        queries: Vector,
        k: int,
        ef_search: int | None,
        user: str,
        agent: str | None,
        filters: RecallFilters,
    ) -> list[list[tuple[uuid.UUID, float]]] | None:
        """Nearest ``(id, cosine)`` pairs per query ``(b, 384)`` within the scope and the
        dialogue filters (roles, acts, session) of ``filters``; ``None`` when Postgres
        must answer (index not ready, or a scope it cannot serve well)."""
        if not self.ready.is_set():
            return None
        return self.index.search_scoped(
            queries,
            k,
            ef_search,
            user=user,
            agent=agent,
            roles=None if filters.roles is None else list(filters.roles),
            acts=None if filters.acts is None else list(filters.acts),
            session=filters.session,
        )

    def maybe_save(self) -> None:
        """Save the index if it changed and :attr:`save_every_s` has passed."""
        if self.index.dirty and time.monotonic() - self._last_save >= self.save_every_s:
            self.save()

    def save(self) -> None:
        """Write the index under :attr:`root` (only once it is complete)."""
        if not self.ready.is_set():
            return
        self._last_save = time.monotonic()  # a failed save waits save_every_s too
        try:
            self.index.save(self.root)
        except (OSError, RuntimeError) as exc:  # a full or read-only state dir
            log.error(
                "search index not saved under %s (%s); it keeps serving from RAM, and the "
                "next start rebuilds what the saved copy lacks from Postgres",
                self.root,
                exc,
            )
            with contextlib.suppress(OSError):  # give back the space of a partial save
                for tmp in self.root.glob("*.tmp"):
                    tmp.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop a running build and save a complete, changed index."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self.index.dirty:
            self.save()
