"""Access statistics and tier membership, persisted under the state dir.

Each episode recalled lately has an access count (decayed by half every
``half_life_s``) and a last-access time. They are columns of NumPy arrays by slot, with
the ids in an :class:`~emily.memory.idmap.IdMap` (about 60 bytes an episode, where a
dict of dataclasses took some 300). An episode whose decayed count falls below
``floor`` and that no cache tier holds is dropped at the next save: its next recall
starts it again from zero, which differs from keeping it by less than ``floor``.

The file (``access.npy``: one row per episode, its id, count, last access and tier) is
replaced atomically (write, fsync, rename), so a crash leaves the previous version. L0
and L1 warm up from it. A JSON file of the earlier layout (``access.json``) is read
when there is no ``.npy`` yet, and removed after the first save.
"""

from __future__ import annotations

import io
import json
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import numpy as np
import numpy.typing as npt

from emily.bus.schemas.memory import Tier
from emily.memory.idmap import KEY, IdMap, as_keys, as_uuids

log = logging.getLogger(__name__)
TIERS: tuple[Tier, ...] = get_args(Tier)
#: One saved row: id, decayed count at ``last``, ``last`` (Unix s), tier code.
ROW = np.dtype([("key", KEY), ("count", "<f4"), ("last", "<f8"), ("tier", "u1")])


@dataclass(frozen=True)
class Access:
    """Decayed access count and last access time (Unix seconds) of one episode."""

    count: float
    last: float


class AccessStats:
    """Per-episode access statistics.

    Parameters
    ----------
    path : file the statistics persist to (``access.npy``).
    half_life_s : seconds over which a count halves without accesses.
    floor : decayed count below which an episode that no tier holds is forgotten.
    """

    def __init__(self, path: Path, half_life_s: float = 86400.0, floor: float = 1 / 16) -> None:
        self.path = path
        self.half_life_s = half_life_s
        self.floor = floor
        self._slots = IdMap()
        self._count = np.zeros(16, np.float32)
        self._last = np.zeros(16, np.float64)

    def arrays(self) -> dict[str, np.ndarray[Any, Any]]:
        """The statistics' NumPy columns by name, their id map's among them."""
        ids = {f"ids.{n}": a for n, a in self._slots.arrays().items()}
        return {"count": self._count, "last": self._last, **ids}

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: object) -> bool:
        return key in self._slots

    def get(self, key: uuid.UUID) -> Access | None:
        """``key``'s entry (count as of its last access), or ``None``."""
        slot = self._slots.get(key)
        if slot is None:
            return None
        return Access(float(self._count[slot]), float(self._last[slot]))

    def lasts(self, keys: Sequence[uuid.UUID]) -> npt.NDArray[np.float64]:
        """Each key's last access (Unix s), ``-inf`` where it has no entry; ``(len(keys),)``."""
        slots = self._slots.find(keys)
        out = np.full(len(keys), -np.inf)
        out[slots >= 0] = self._last[slots[slots >= 0]]
        return out

    def items(self) -> Iterator[tuple[uuid.UUID, Access]]:
        """Every entry, in the order the episodes were first recalled."""
        slots = self._slots.labels()
        counts, lasts = self._count[slots].tolist(), self._last[slots].tolist()
        for key, c, t in zip(self._slots.uuids(slots), counts, lasts, strict=True):
            yield key, Access(c, t)

    def touch(self, key: uuid.UUID, now: float) -> Access:
        """Record one access at ``now``; returns the updated entry."""
        return self.touch_many([key], now)[0]

    def touch_many(self, keys: Sequence[uuid.UUID], now: float) -> list[Access]:
        """:meth:`touch` each of ``keys`` in turn (repeats count twice)."""
        slots = self._slots.find(keys)
        fresh: dict[uuid.UUID, None] = {}
        for i in np.flatnonzero(slots < 0).tolist():
            fresh[keys[i]] = None
        if fresh:
            new = self._slots.append(list(fresh))
            need = self._slots.used
            if need > len(self._count):
                size = max(need, 2 * len(self._count))
                self._count = np.resize(self._count, size)
                self._last = np.resize(self._last, size)
            self._count[new] = 0.0
            self._last[new] = now
            slots = self._slots.find(keys)
        out = []
        for slot in slots.tolist():
            count = self._decayed(float(self._count[slot]), float(self._last[slot]), now) + 1.0
            self._count[slot], self._last[slot] = count, now
            out.append(Access(count, now))
        return out

    def _decayed(self, count: float, last: float, now: float) -> float:
        return float(count * 2.0 ** (-max(now - last, 0.0) / self.half_life_s))

    def decayed(self, entry: Access, now: float) -> float:
        """``entry.count`` decayed to ``now``."""
        return self._decayed(entry.count, entry.last, now)

    def pop(self, key: uuid.UUID) -> None:
        """Forget ``key``'s entry, if any."""
        self._slots.pop(key)

    def prune(self, keep: set[uuid.UUID] | dict[uuid.UUID, Tier], now: float) -> int:
        """Forget every entry decayed below :attr:`floor` whose id is not in ``keep``
        (the cached episodes); returns how many were forgotten. The arrays are rebuilt
        without them once they are half dead."""
        slots = self._slots.labels()
        age = np.maximum(now - self._last[slots], 0.0)
        low = slots[self._count[slots] * np.exp2(-age / self.half_life_s) < self.floor]
        gone = [k for k in self._slots.uuids(low) if k not in keep]
        for key in gone:
            self._slots.pop(key)
        if self._slots.used > 2 * len(self._slots) + 1024:
            live = self._slots.labels()
            keys = self._slots.uuids(live)
            self._count, self._last = self._count[live], self._last[live]
            self._slots = IdMap()
            self._slots.append(keys)
        return len(gone)

    # ------------------------------------------------------------- files
    @property
    def legacy_path(self) -> Path:
        """The JSON file of the earlier layout, read when :attr:`path` is absent."""
        return self.path.with_suffix(".json")

    def save(self, tiers: dict[uuid.UUID, Tier], now: float | None = None) -> None:
        """Forget entries decayed below the floor (:meth:`prune`), then write the
        statistics and each episode's tier atomically."""
        if now is not None:
            self.prune(tiers, now)
        slots = self._slots.labels()
        rows = np.zeros(len(slots), ROW)
        keys = self._slots.uuids(slots)
        rows["key"] = as_keys(keys)
        rows["count"] = self._count[slots]
        rows["last"] = self._last[slots]
        code = {t: i for i, t in enumerate(TIERS)}
        l3 = code["L3"]
        rows["tier"] = [code.get(tiers.get(k, "L3"), l3) for k in keys]
        buf = io.BytesIO()
        np.save(buf, rows, allow_pickle=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(buf.getbuffer())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self.legacy_path.unlink(missing_ok=True)

    def load(self) -> dict[uuid.UUID, Tier]:
        """Read the file back (if any); returns each episode's tier at save time.

        A damaged file is logged and skipped (the statistics are a cache: the tiers
        start cold)."""
        try:
            if self.path.exists():
                keys, counts, lasts, tiers = self._read_npy()
            elif self.legacy_path.exists():
                keys, counts, lasts, tiers = self._read_json()
            else:
                return {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("access statistics in %s unreadable (%s); tiers start cold", self.path, exc)
            return {}
        self._slots = IdMap()
        labels = self._slots.append(keys)
        self._count = np.asarray(counts, np.float32)
        self._last = np.asarray(lasts, np.float64)
        return {keys[i]: tiers[i] for i in labels.tolist()}

    def _read_npy(self) -> tuple[list[uuid.UUID], list[float], list[float], list[Tier]]:
        rows = np.load(self.path, allow_pickle=False)
        if rows.dtype != ROW:
            raise ValueError(f"rows of {rows.dtype}, not {ROW}")
        keys = as_uuids(rows["key"])
        tiers = [TIERS[t] for t in rows["tier"].tolist()]
        return keys, rows["count"].tolist(), rows["last"].tolist(), tiers

    def _read_json(self) -> tuple[list[uuid.UUID], list[float], list[float], list[Tier]]:
        data = json.loads(self.legacy_path.read_text())
        keys, counts, lasts, tiers = [], [], [], []
        for k, (count, last, tier) in data.items():
            if tier not in TIERS:
                raise ValueError(f"unknown tier {tier!r}")
            keys.append(uuid.UUID(k))
            counts.append(float(count))
            lasts.append(float(last))
            tiers.append(tier)
        return keys, counts, lasts, tiers
