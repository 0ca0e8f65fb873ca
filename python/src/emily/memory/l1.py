"""Tier L1's admission and eviction policy: W-TinyLFU (Einziger, Friedman & Manes, 2017).

A small LRU *window* (1% of capacity) takes every new key; a segmented-LRU *main*
(probation 20%, protected 80%) holds the rest. When the window overflows, its victim
competes with main's probation victim, and the one a count-min *sketch* of recent
access frequency has seen more often stays. The sketch halves its counters every
``10 * capacity`` accesses, so frequency also tracks recency.

The policy only manages keys; :mod:`emily.memory.tiers` keeps the values. Chosen over
plain LRU and S3-FIFO by ``bench/memory_tiers.py`` (see the README).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)
_SEEDS = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F)


class CountMinSketch:
    """Approximate access counts with 4 rows of saturating 4-bit-like counters (cap 15).

    Parameters
    ----------
    width : counters per row (rounded up to a power of two).
    sample : accesses between halvings ("aging").
    """

    def __init__(self, width: int, sample: int) -> None:
        self.width = 1 << max(4, (max(width, 1) - 1).bit_length())
        # plain bytearrays: per-counter access is far cheaper than NumPy scalar indexing
        self.rows = [bytearray(self.width) for _ in _SEEDS]
        self.sample = max(sample, 1)
        self.additions = 0

    def _cols(self, key: Hashable) -> list[int]:
        h = hash(key) & 0xFFFFFFFFFFFFFFFF
        mask = self.width - 1
        return [((h * s) >> 17) & mask for s in _SEEDS]

    def add(self, key: Hashable) -> None:
        """Count one access of ``key``."""
        for row, col in zip(self.rows, self._cols(key), strict=True):
            if row[col] < 15:
                row[col] += 1
        self.additions += 1
        if self.additions >= self.sample:
            self.rows = [bytearray(np.frombuffer(row, dtype=np.uint8) >> 1) for row in self.rows]
            self.additions //= 2

    def estimate(self, key: Hashable) -> int:
        """Estimated recent accesses of ``key`` (an upper bound, at most 15)."""
        return min(row[col] for row, col in zip(self.rows, self._cols(key), strict=True))


class WTinyLFU(Generic[K]):
    """Keys held by a W-TinyLFU cache of ``capacity`` entries.

    :meth:`access` records a hit or admits a key and returns the keys evicted by it
    (possibly the new key itself, when the sketch rejects it).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("an L1 capacity must be at least 1 episode")
        self.capacity = capacity
        self.window_cap = max(1, capacity // 100)
        main = capacity - self.window_cap
        self.protected_cap = int(main * 0.8)
        self.window: OrderedDict[K, None] = OrderedDict()
        self.probation: OrderedDict[K, None] = OrderedDict()
        self.protected: OrderedDict[K, None] = OrderedDict()
        self.sketch = CountMinSketch(capacity * 4, capacity * 10)

    def __len__(self) -> int:
        return len(self.window) + len(self.probation) + len(self.protected)

    def __contains__(self, key: K) -> bool:
        return key in self.window or key in self.probation or key in self.protected

    def __iter__(self) -> Iterator[K]:
        yield from self.window
        yield from self.probation
        yield from self.protected

    def access(self, key: K) -> list[K]:
        """Record an access of ``key``, admitting it when new; returns evicted keys."""
        self.sketch.add(key)
        if key in self.window:
            self.window.move_to_end(key)
            return []
        if key in self.protected:
            self.protected.move_to_end(key)
            return []
        if key in self.probation:
            del self.probation[key]
            self.protected[key] = None
            if len(self.protected) > self.protected_cap:
                demoted, _ = self.protected.popitem(last=False)
                self.probation[demoted] = None
            return []
        self.window[key] = None
        if len(self.window) <= self.window_cap:
            return []
        candidate, _ = self.window.popitem(last=False)
        if len(self) < self.capacity:
            self.probation[candidate] = None
            return []
        if not self.probation and not self.protected:  # capacity 1: the window is all
            return [candidate]
        victim = next(iter(self.probation)) if self.probation else next(iter(self.protected))
        if self.sketch.estimate(candidate) > self.sketch.estimate(victim):
            self.discard(victim)
            self.probation[candidate] = None
            return [victim]
        return [candidate]

    def discard(self, key: K) -> bool:
        """Remove ``key`` (demotion on idleness); True if it was held."""
        for segment in (self.window, self.probation, self.protected):
            if key in segment:
                del segment[key]
                return True
        return False

    def frequency(self, key: K) -> int:
        """The sketch's estimate of ``key``'s recent accesses."""
        return self.sketch.estimate(key)
