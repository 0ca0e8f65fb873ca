"""A compact two-way map between episode ids (UUIDs) and dense integer labels.

A Python ``dict[UUID, int]`` beside a ``list[UUID]`` costs about 200 bytes per entry
(the UUID object and its 128-bit int, a list slot, a dict entry, a boxed label), more
than a tenth of what the HNSW graph keeps per element. Here each label's id is one
16-byte row of a NumPy array (the UUID's bytes, as ``ids.bin`` holds them), and the
reverse lookup is that array sorted (plus the labels in that order), searched with
``np.searchsorted``: about 37 bytes per entry in all.

New ids go to a small dict first and are merged into the sorted part in batches. Ids
are UUIDv7 (time-ordered), so a batch usually sorts after every id already there and
is appended in place; otherwise it is inserted (one copy of the sorted part). A
removed id's label stays dead (hnswlib keeps the slot); its sorted row is dropped at
the next merge.
"""

from __future__ import annotations

import uuid
from collections.abc import ItemsView, Iterable, Iterator, Mapping, Sequence, ValuesView
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

#: One id: the UUID's 16 bytes as two big-endian words, so rows sort as UUIDs do.
KEY = np.dtype([("hi", ">u8"), ("lo", ">u8")])
#: Fewest unsorted ids before a merge (more once the sorted part is large: 1/64 of it).
TAIL_MIN = 1024
Keys = npt.NDArray[np.void]
Labels = npt.NDArray[np.int64]
A = TypeVar("A", bound=np.ndarray[Any, Any])


def as_keys(ids: Sequence[uuid.UUID]) -> Keys:
    """``ids`` as rows of :data:`KEY`, shape ``(len(ids),)``."""
    return np.frombuffer(b"".join(k.bytes for k in ids), KEY).copy()


def as_uuids(keys: Keys) -> list[uuid.UUID]:
    """Rows of :data:`KEY` back to UUIDs, in order (the inverse of :func:`as_keys`)."""
    raw = np.ascontiguousarray(keys, KEY).tobytes()
    return [uuid.UUID(bytes=raw[i : i + 16]) for i in range(0, len(raw), 16)]


def _grown(a: A, need: int, fill: object = None) -> A:
    """``a`` if it has ``need`` rows, else a copy at least twice as long."""
    if need <= len(a):
        return a
    new = np.empty(max(need, 2 * len(a), 16), a.dtype)
    if fill is not None:
        new[len(a) :] = fill
    new[: len(a)] = a
    return new  # type: ignore[return-value]


class IdMap(Mapping[uuid.UUID, int]):
    """Live ids to their labels (a read-only :class:`Mapping` plus :meth:`append` and
    :meth:`pop`); labels are ``0 .. used - 1`` in the order the ids were appended.

    Not thread-safe by itself: :class:`~emily.memory.index.AnnIndex` holds its lock.
    """

    def __init__(self) -> None:
        self._keys: Keys = np.empty(16, KEY)  # by label
        self._live = np.zeros(16, np.bool_)  # by label
        self.used = 0  # labels handed out, live or dead
        self._count = 0  # live labels
        self._sorted: Keys = np.empty(16, KEY)
        self._slabel = np.empty(16, np.int32)  # label of each sorted row
        self._ns = 0  # sorted rows (some may be dead)
        self._dead_sorted = 0
        self._tail: dict[uuid.UUID, int] = {}

    @classmethod
    def from_bytes(cls, raw: bytes, deleted: Iterable[int] = ()) -> IdMap:
        """The map whose label ``i`` is the UUID in bytes ``16 i .. 16 i + 15`` of
        ``raw`` (the ``ids.bin`` layout), with the ``deleted`` labels dead."""
        if len(raw) % 16:
            raise ValueError(f"an id table is 16 bytes per label, not {len(raw)} bytes")
        self = cls()
        n = len(raw) // 16
        self._keys = np.frombuffer(raw, KEY).copy()
        self._live = np.ones(n, np.bool_)
        dead = np.fromiter(deleted, np.int64)
        if len(dead) and (dead.min() < 0 or dead.max() >= n):
            raise ValueError(f"a deleted label is outside 0 .. {n - 1}")
        self._live[dead] = False
        self.used, self._count = n, int(self._live.sum())
        labels = np.flatnonzero(self._live)
        order = np.argsort(self._keys[labels], kind="stable")
        self._sorted, self._slabel = self._keys[labels][order], labels[order].astype(np.int32)
        self._ns = len(labels)
        if self._ns > 1 and not (self._sorted[1:] != self._sorted[:-1]).all():
            raise ValueError("an id table holds the same live id twice")
        return self

    def to_bytes(self) -> bytes:
        """Every label's id, 16 bytes each, in label order (see :meth:`from_bytes`)."""
        return self._keys[: self.used].tobytes()

    # ------------------------------------------------------------- Mapping
    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[uuid.UUID]:
        labels = self.labels()
        for i in range(0, len(labels), 4096):  # a chunk of UUID objects at a time
            yield from self.uuids(labels[i : i + 4096])

    def __getitem__(self, key: uuid.UUID) -> int:
        label = int(self.find([key])[0])
        if label < 0:
            raise KeyError(key)
        return label

    def __contains__(self, key: object) -> bool:
        return isinstance(key, uuid.UUID) and self.find([key])[0] >= 0

    def get(self, key: uuid.UUID, default: int | None = None) -> int | None:  # type: ignore[override]
        """``key``'s label, or ``default``."""
        label = int(self.find([key])[0])
        return default if label < 0 else label

    def values(self) -> ValuesView[int]:
        return ValuesView({k: int(v) for k, v in zip(self, self.labels(), strict=True)})

    def items(self) -> ItemsView[uuid.UUID, int]:
        return ItemsView({k: int(v) for k, v in zip(self, self.labels(), strict=True)})

    # ------------------------------------------------------------- lookups
    def labels(self) -> Labels:
        """Live labels, ascending, shape ``(len(self),)``."""
        return np.flatnonzero(self._live[: self.used])

    def dead(self) -> Labels:
        """Labels of removed ids, ascending."""
        return np.flatnonzero(~self._live[: self.used])

    def live(self, label: int) -> bool:
        """Whether ``label`` belongs to a live id."""
        return 0 <= label < self.used and bool(self._live[label])

    def uuid_at(self, label: int) -> uuid.UUID:
        """The id of ``label`` (live or dead)."""
        return uuid.UUID(bytes=self._keys[label].tobytes())

    def uuids(self, labels: npt.ArrayLike) -> list[uuid.UUID]:
        """The ids of ``labels`` (any shape, flattened), in that order."""
        return as_uuids(self._keys[np.asarray(labels, np.int64).ravel()])

    def find(self, ids: Sequence[uuid.UUID]) -> Labels:
        """Each id's live label, or -1 where it has none; shape ``(len(ids),)``."""
        out = np.full(len(ids), -1, np.int64)
        if not len(ids):
            return out
        if self._ns:
            q = as_keys(ids)
            pos = np.searchsorted(self._sorted[: self._ns], q)
            hit = pos < self._ns
            hit[hit] = self._sorted[pos[hit]] == q[hit]
            got = self._slabel[pos[hit]].astype(np.int64)
            alive = self._live[got]
            idx = np.flatnonzero(hit)[alive]
            out[idx] = got[alive]
        if self._tail:
            for i in np.flatnonzero(out < 0).tolist():
                out[i] = self._tail.get(ids[i], -1)
        return out

    # ------------------------------------------------------------- writes
    def append(self, ids: Sequence[uuid.UUID]) -> Labels:
        """Give each of ``ids`` (none of them live, no repeats) the next label; returns
        the labels, ``used .. used + len(ids) - 1``."""
        m = len(ids)
        labels = np.arange(self.used, self.used + m, dtype=np.int64)
        if not m:
            return labels
        need = self.used + m
        self._keys = _grown(self._keys, need)
        self._live = _grown(self._live, need, False)
        self._keys[self.used : need] = as_keys(ids)
        self._live[self.used : need] = True
        for key, label in zip(ids, labels.tolist(), strict=True):
            self._tail[key] = label
        self.used, self._count = need, self._count + m
        if len(self._tail) >= max(TAIL_MIN, self._ns // 64):
            self._merge()
        return labels

    def pop(self, key: uuid.UUID) -> int | None:
        """Remove ``key``; returns its label (now dead), or ``None`` if it was not live."""
        label = self._tail.pop(key, None)
        if label is None:
            found = int(self.find([key])[0])
            if found < 0:
                return None
            label = found
            self._dead_sorted += 1
        self._live[label] = False
        self._count -= 1
        return label

    def _merge(self) -> None:
        """Move the unsorted ids into the sorted part (dropping dead rows first)."""
        if self._dead_sorted:
            keep = self._live[self._slabel[: self._ns]]
            s, lab = self._sorted[: self._ns][keep], self._slabel[: self._ns][keep]
            self._ns = len(s)
            self._sorted[: self._ns], self._slabel[: self._ns] = s, lab
            self._dead_sorted = 0
        labels = np.fromiter(self._tail.values(), np.int64, len(self._tail))
        self._tail.clear()
        keys = self._keys[labels]
        order = np.argsort(keys, kind="stable")
        keys, labels = keys[order], labels[order]
        pos = np.searchsorted(self._sorted[: self._ns], keys)
        need = self._ns + len(keys)
        if pos[0] == self._ns:  # all after the sorted part: append in place
            self._sorted, self._slabel = _grown(self._sorted, need), _grown(self._slabel, need)
            self._sorted[self._ns : need], self._slabel[self._ns : need] = keys, labels
        else:
            have = len(self._sorted)
            size = have if need <= have else max(need, 2 * have)
            s, lab = np.empty(size, KEY), np.empty(size, np.int32)
            s[:need] = np.insert(self._sorted[: self._ns], pos, keys)
            lab[:need] = np.insert(self._slabel[: self._ns], pos, labels)
            self._sorted, self._slabel = s, lab
        self._ns = need

    def arrays(self) -> dict[str, np.ndarray[Any, Any]]:
        """The map's NumPy columns by name (for :mod:`~emily.memory.heapdump`)."""
        return {
            "keys": self._keys,
            "live": self._live,
            "sorted": self._sorted,
            "slabel": self._slabel,
        }

    def nbytes(self) -> int:
        """Bytes of the arrays (allocated) and an estimate for the unsorted dict."""
        arrays = (self._keys, self._live, self._sorted, self._slabel)
        return sum(a.nbytes for a in arrays) + 200 * len(self._tail)
