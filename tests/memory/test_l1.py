"""W-TinyLFU: capacity is never exceeded, and it beats LRU on a skewed trace."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from emily.memory.l1 import CountMinSketch, WTinyLFU


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 50), st.lists(st.integers(0, 200), max_size=400))
def test_capacity_is_never_exceeded_and_evictions_are_members(cap: int, trace: list[int]) -> None:
    cache: WTinyLFU[int] = WTinyLFU(cap)
    held: set[int] = set()
    for key in trace:
        evicted = cache.access(key)
        held.add(key)
        for victim in evicted:
            assert victim in held
            held.discard(victim)
        assert len(cache) <= cap and set(cache) == held


def test_sketch_counts_and_ages() -> None:
    sketch = CountMinSketch(4096, sample=1000)
    for _ in range(5):
        sketch.add("a")
    assert sketch.estimate("a") >= 5 and sketch.estimate("never") <= 1
    for i in range(1000):
        sketch.add(i)
    assert sketch.estimate("a") <= 3  # halved by aging


def zipf_trace(n_keys: int, length: int, s: float = 0.99, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_keys + 1) ** s
    return rng.choice(n_keys, size=length, p=weights / weights.sum())


def hit_ratio_lru(trace: np.ndarray, cap: int) -> float:
    lru: OrderedDict[int, None] = OrderedDict()
    hits = 0
    for key in trace.tolist():
        if key in lru:
            hits += 1
            lru.move_to_end(key)
        else:
            lru[key] = None
            if len(lru) > cap:
                lru.popitem(last=False)
    return hits / len(trace)


def hit_ratio_tinylfu(trace: np.ndarray, cap: int) -> float:
    cache: WTinyLFU[int] = WTinyLFU(cap)
    hits = 0
    for key in trace.tolist():
        hits += key in cache
        cache.access(key)
    return hits / len(trace)


def test_beats_lru_on_zipf() -> None:
    trace = zipf_trace(10_000, 60_000)
    lru, tlfu = hit_ratio_lru(trace, 100), hit_ratio_tinylfu(trace, 100)
    assert tlfu > lru + 0.05, (tlfu, lru)
