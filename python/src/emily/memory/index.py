"""The in-process search index: HNSW (hnswlib) over every embedding that L3 holds.

Postgres stays the store of record, and its own HNSW index still serves filtered
recalls. Unfiltered recalls are answered here instead: the same graph search without a
SQL round trip, buffer-manager page pins or executor start-up, which is what limits
pgvector to about a thousand searches per second on two cores.

The index is a cache of L3, so it can always be rebuilt from it:

- :meth:`AnnIndex.add` follows every committed store (the caller adds after
  Postgres accepts the rows, so the index never holds an episode L3 lacks for long).
- :meth:`AnnIndex.reconcile` makes the index equal to a given id set: at start-up
  against Postgres (adds what is missing, removes what L3 no longer has), so a crash
  between a commit and :meth:`save`, or a restored database, costs only the difference.
- :meth:`AnnIndex.save` writes the graph and its id table under the state dir;
  :meth:`AnnIndex.load` reads them back if their parameters still match.

Labels are dense integers (hnswlib's ids); :class:`~emily.memory.idmap.IdMap` maps
them to episode ids and back in about 37 bytes per label.
Each label also belongs to a user's partition (:mod:`emily.memory.scopes`), which
:meth:`AnnIndex.search_scoped` searches.
"""

from __future__ import annotations

import json
import math
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import hnswlib
import numpy as np
import numpy.typing as npt

from emily.bus.schemas.memory import EMBED_DIM
from emily.memory.errors import MemoryServiceError
from emily.memory.idmap import IdMap
from emily.memory.rwlock import RWLock
from emily.memory.scopes import DEFAULT_SCOPE, EXACT_MAX, Part, Scope, ScopeTable, exact_top

Vector = npt.NDArray[np.float32]
INDEX_FILE = "hnsw.bin"
IDS_FILE = "ids.bin"
META_FILE = "meta.json"
#: Least share of the index a scope must hold for the shared graph to answer it by
#: over-fetch (below that, and too large for exact search, it gets a graph of its own).
MIN_SHARE = 0.1


@dataclass(frozen=True)
class HnswParams:
    """HNSW build parameters; a saved index is reused only when they match."""

    m: int = 16
    ef_construction: int = 64
    dim: int = EMBED_DIM


class AnnIndex:
    """Approximate nearest neighbours by inner product over unit vectors.

    Parameters
    ----------
    params : HNSW ``M`` and ``ef_construction``.
    ef_search : default search breadth (``ef``), per query overridable.
    capacity : initial number of slots; the index doubles when full.
    """

    def __init__(
        self, params: HnswParams | None = None, *, ef_search: int = 64, capacity: int = 1024
    ) -> None:
        self.params = params or HnswParams()
        self.ef_search = ef_search
        self._index = self._new(max(capacity, 16))
        self.label_of = IdMap()
        self.lock = RWLock()
        self.dirty = False
        self.scopes = ScopeTable()

    def _new(self, capacity: int) -> hnswlib.Index:
        index = hnswlib.Index(space="ip", dim=self.params.dim)
        index.init_index(
            max_elements=capacity,
            ef_construction=self.params.ef_construction,
            M=self.params.m,
            random_seed=100,
        )
        index.set_ef(self.ef_search)
        index.set_num_threads(1)
        return index

    def __len__(self) -> int:
        return len(self.label_of)

    def __contains__(self, key: object) -> bool:
        with self.lock.read():
            return key in self.label_of

    @property
    def capacity(self) -> int:
        """Slots allocated (labels used, live or deleted, fit within it)."""
        return int(self._index.get_max_elements())

    # ------------------------------------------------------------- writes
    def add(
        self,
        ids: Sequence[uuid.UUID],
        vectors: Vector,
        *,
        threads: int = 1,
        scopes: Sequence[Scope] | None = None,
    ) -> int:
        """Insert the episodes not yet indexed; returns how many were added.

        ``vectors`` has shape ``(len(ids), 384)``, float32, unit norm. ``threads``: build
        threads (-1: every core; bulk builds use it, a store's few rows do not).
        ``scopes[i]`` is ``ids[i]``'s ``(user, agent, role, act, session)``; without
        them every episode is the default user's statement.
        """
        return self._add(ids, vectors, threads, scopes, assign=True)

    def _add(
        self,
        ids: Sequence[uuid.UUID],
        vectors: Vector,
        threads: int,
        scopes: Sequence[Scope] | None,
        *,
        assign: bool,
    ) -> int:
        vecs = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.params.dim)
        with self.lock.write():
            first: dict[uuid.UUID, int] = {}
            for i in np.flatnonzero(self.label_of.find(ids) < 0).tolist():
                first.setdefault(ids[i], i)
            fresh = list(first.values())
            if not fresh:
                return 0
            used = self.label_of.used
            need = used + len(fresh)
            if need > self.capacity:
                self._index.resize_index(max(need, 2 * self.capacity))
            self.scopes.reserve(need)
            self._index.add_items(vecs[fresh], np.arange(used, need), num_threads=threads)
            labels = self.label_of.append(list(first))
            for i, label in zip(fresh, labels.tolist(), strict=True):
                if assign:
                    self.scopes.assign(label, scopes[i] if scopes else DEFAULT_SCOPE, vecs[i])
            self.dirty = True
            return len(fresh)

    def remove(self, ids: Iterable[uuid.UUID]) -> int:
        """Drop episodes from the results (HNSW marks them deleted); returns how many."""
        done = 0
        with self.lock.write():
            for key in ids:
                label = self.label_of.pop(key)
                if label is None:
                    continue
                self._index.mark_deleted(label)
                self.scopes.drop(label)
                done += 1
            self.dirty = self.dirty or done > 0
        return done

    def reconcile(
        self,
        wanted: set[uuid.UUID],
        vectors_of: Callable[[list[uuid.UUID]], Iterable[tuple[Sequence[uuid.UUID], Vector]]],
    ) -> tuple[int, int]:
        """Make the indexed set equal to ``wanted``; returns ``(added, removed)``.

        ``vectors_of(ids)`` yields ``(ids, vectors)`` chunks for the ids to add (read
        from L3 in batches, so a first build does not hold every row at once).
        """
        removed = self.remove([k for k in list(self.label_of) if k not in wanted])
        want = list(wanted)
        with self.lock.read():
            found = self.label_of.find(want)
        missing = [want[i] for i in np.flatnonzero(found < 0).tolist()]
        added = 0
        for chunk_ids, chunk_vecs in vectors_of(missing) if missing else ():
            # their scopes follow in set_scopes (a build reads them for every episode)
            added += self._add(chunk_ids, chunk_vecs, -1, None, assign=False)
        return added, removed

    def set_scopes(self, scope_of: dict[uuid.UUID, Scope]) -> int:
        """Place every indexed episode not yet in a partition into its user's, from
        ``scope_of`` (read from L3); returns how many were placed.

        Small users' vectors are read back from the graph once, for exact search.
        """
        with self.lock.write():
            labels = self.label_of.labels()
            labels = labels[~self.scopes.assigned_mask(labels)]
            todo = [
                (label, scope_of[key])
                for key, label in zip(self.label_of.uuids(labels), labels.tolist(), strict=True)
                if key in scope_of
            ]
            sizes: dict[str, int] = {}
            for _, scope in todo:
                sizes[scope[0]] = sizes.get(scope[0], 0) + 1
            small = [
                label
                for label, scope in todo
                if sizes[scope[0]] + self.scopes.count(scope[0]) <= EXACT_MAX
            ]
            vecs = self._index.get_items(small, return_type="numpy") if small else None
            row = {label: i for i, label in enumerate(small)}
            for label, scope in todo:
                i = row.get(label)
                self.scopes.assign(label, scope, None if vecs is None or i is None else vecs[i])
            return len(todo)

    # ------------------------------------------------------------- reads
    def search(
        self, query: Vector, k: int, ef_search: int | None = None
    ) -> list[tuple[uuid.UUID, float]]:
        """The ``k`` nearest indexed episodes to ``query`` ``(384,)``: ``(id, cosine)``.

        Best first; fewer than ``k`` only when fewer are indexed.
        """
        return self.search_many(np.asarray(query).reshape(1, -1), k, ef_search)[0]

    def search_many(
        self, queries: Vector, k: int, ef_search: int | None = None, *, threads: int = 1
    ) -> list[list[tuple[uuid.UUID, float]]]:
        """:meth:`search` for each row of ``queries`` ``(b, 384)`` in one call.

        ``threads`` search threads (hnswlib releases the GIL while it searches).
        """
        q = np.asarray(queries, dtype=np.float32).reshape(-1, self.params.dim)
        ef = ef_search or self.ef_search
        with self.lock.read() if ef == self.ef_search else self.lock.write():
            n = min(k, len(self.label_of))
            if n == 0 or not len(q):
                return [[] for _ in range(len(q))]
            if ef != self.ef_search:
                self._index.set_ef(max(ef, n))
            try:
                labels, dists = self._index.knn_query(q, k=n, num_threads=threads)
            except RuntimeError as exc:
                raise IndexUnavailable(f"HNSW search failed: {exc}") from exc
            finally:
                if ef != self.ef_search:
                    self._index.set_ef(self.ef_search)
            found = iter(self.label_of.uuids(labels))
            return [[(next(found), 1.0 - dist) for dist in row_d] for row_d in dists.tolist()]

    def search_scoped(
        self,
        queries: Vector,
        k: int,
        ef_search: int | None = None,
        *,
        user: str,
        agent: str | None = None,
        roles: list[str] | None = None,
        acts: list[str] | None = None,
        session: str | None = None,
    ) -> list[list[tuple[uuid.UUID, float]]] | None:
        """:meth:`search_many` within ``user``'s episodes (and ``agent``'s, ``roles``,
        ``acts``, ``session`` when given); ``None`` when Postgres must answer.

        A small scope is searched exactly; a large one through the shared graph,
        fetching ``max(1.5 k, ef) / share`` candidates (then four times that) so that
        ``k`` of the scope survive with the recall of an unscoped search; a scope too
        large for exact search and too small a share of the index is searched in a graph
        of its own, which its first recall starts building (Postgres answers until then).
        """
        q = np.asarray(queries, dtype=np.float32).reshape(-1, self.params.dim)
        ef = ef_search or self.ef_search
        empty: list[list[tuple[uuid.UUID, float]]] = [[] for _ in range(len(q))]
        with self.lock.read() if ef == self.ef_search else self.lock.write():
            part = self.scopes.part(user)
            if part is None or not len(q):
                return empty
            labels = part.live()
            keep = self.scopes.mask(labels, agent, roles, acts, session)
            chosen = labels if keep is None else labels[keep]
            if not len(chosen):
                return empty
            if part.vecs is not None:
                vecs = part.vecs[: part.n]
                rows, scores = exact_top(q, vecs if keep is None else vecs[keep], k)
                found = iter(self.label_of.uuids(chosen[rows]))
                return [[(next(found), float(s)) for s in c] for c in scores.tolist()]
            total = len(self.label_of)
            share = len(chosen) / total
            graph = self._index
            if share < MIN_SHARE:
                if part.graph is None:
                    self._build_part(user, part)
                    return None
                graph, total, share = part.graph, part.n, len(chosen) / part.n
            elif ef != self.ef_search:
                self._index.set_ef(ef)
            want = min(k, len(chosen))
            # a search of breadth ef / share meets about ef of the scope's episodes, as
            # an unscoped search of breadth ef would (hnswlib searches max(ef, k) wide)
            fetch = k if share == 1.0 else math.ceil(max(1.5 * k, ef) / share)
            if graph is not self._index:
                fetch = max(fetch, ef)  # a part's graph keeps the default breadth
            try:
                for _ in range(2):
                    fetch = min(fetch, total)
                    labs, dists = graph.knn_query(q, k=fetch, num_threads=1)
                    out = []
                    for row_l, row_d in zip(labs, dists, strict=True):
                        ok = self.scopes.in_scope(row_l, user, agent, roles, acts, session)
                        keys = self.label_of.uuids(row_l[ok][:k])
                        out.append(
                            [
                                (key, 1.0 - float(d))
                                for key, d in zip(keys, row_d[ok][:k], strict=True)
                            ]
                        )
                    if all(len(o) >= want for o in out):
                        return out
                    fetch *= 4
            except RuntimeError:
                return None
            finally:
                if graph is self._index and ef != self.ef_search:
                    self._index.set_ef(self.ef_search)
            return None

    def _build_part(self, user: str, part: Part) -> None:
        """Build ``part``'s own graph on a background thread (once at a time)."""
        if part.building:
            return
        part.building = True

        def build() -> None:
            try:
                with self.lock.read():
                    labels = part.live().copy()
                    vecs = self._index.get_items(labels, return_type="numpy")
                graph = self._new(2 * len(labels))
                graph.add_items(vecs, labels, num_threads=-1)
                with self.lock.write():
                    if self.scopes.part(user) is not part:
                        return
                    now = set(part.live().tolist())
                    built = set(labels.tolist())
                    for label in built - now:
                        graph.mark_deleted(label)
                    late = sorted(now - built)
                    if late:
                        if len(built) + len(late) > graph.get_max_elements():
                            graph.resize_index(2 * (len(built) + len(late)))
                        graph.add_items(
                            self._index.get_items(late, return_type="numpy"), np.array(late)
                        )
                    part.graph = graph
            finally:
                part.building = False

        threading.Thread(target=build, name="memory-part-index", daemon=True).start()

    # ------------------------------------------------------------- files
    def save(self, root: Path) -> None:
        """Write the graph, the id table and the parameters under ``root`` (atomically)."""
        root.mkdir(parents=True, exist_ok=True)
        with self.lock.write():
            tmp_index = root / f"{INDEX_FILE}.tmp"
            self._index.save_index(str(tmp_index))
            tmp_ids = root / f"{IDS_FILE}.tmp"
            tmp_ids.write_bytes(self.label_of.to_bytes())
            meta = {
                "m": self.params.m,
                "ef_construction": self.params.ef_construction,
                "dim": self.params.dim,
                "labels": self.label_of.used,
                "deleted": self.label_of.dead().tolist(),
            }
            tmp_meta = root / f"{META_FILE}.tmp"
            tmp_meta.write_text(json.dumps(meta))
            for tmp, name in ((tmp_index, INDEX_FILE), (tmp_ids, IDS_FILE), (tmp_meta, META_FILE)):
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, root / name)
            self.dirty = False

    @classmethod
    def load(cls, root: Path, params: HnswParams, *, ef_search: int = 64) -> AnnIndex | None:
        """The index saved under ``root``, or ``None`` if absent, damaged or built otherwise."""
        try:
            meta = json.loads((root / META_FILE).read_text())
            raw = (root / IDS_FILE).read_bytes()
        except (OSError, ValueError):
            return None
        if (meta.get("m"), meta.get("ef_construction"), meta.get("dim")) != (
            params.m,
            params.ef_construction,
            params.dim,
        ) or len(raw) != 16 * meta.get("labels", -1):
            return None
        self = cls(params, ef_search=ef_search, capacity=16)
        try:
            self.label_of = IdMap.from_bytes(raw, meta.get("deleted", []))
            self._index.load_index(str(root / INDEX_FILE), max_elements=max(len(raw) // 16, 16))
        except (RuntimeError, OSError, ValueError, TypeError):
            return None
        self._index.set_ef(ef_search)
        self._index.set_num_threads(1)
        self.scopes.reserve(self.label_of.used)
        return self


class IndexUnavailable(MemoryServiceError):
    """The in-process index cannot answer this search; the caller asks Postgres instead."""
