"""bench/index_rss.py: the index alone, grown in a process of its own, and the slope
that is the other benchmarks' baseline."""

from __future__ import annotations

from types import ModuleType

import pytest

from emily.memory.heapdump import MAP_KINDS
from tests.bench.helpers import bench_module


def _load() -> ModuleType:
    return bench_module("index_rss")


@pytest.mark.parametrize("kind", ["hnswlib", "index"])
def test_each_kind_grows_by_its_vectors_and_links_per_element(kind: str) -> None:
    ir = _load()
    # past 4,096 elements, where AnnIndex drops a user's copy of vectors kept for
    # exact search
    counts = [5000, 6000, 7000, 8000, 9000]
    rows = ir.measure(kind, counts, m=16, ef_construction=64)
    assert [r["count"] for r in rows] == counts
    # the capacity doubles from 1,024 slots, as the service's graph does
    assert [r["capacity"] for r in rows] == [8192] * 4 + [16384]
    per = ir.per_element(rows)
    # a 384-float vector and 32 four-byte base-layer links per element, and less
    # than twice that: the process holds nothing else that grows
    assert 384 * 4 + 32 * 4 < per < 2 * (384 * 4 + 32 * 4), per
    # the maps by kind are there to set beside the service's: the graph is large blocks
    assert all(f"maps_{k}" in r for r in rows for k in MAP_KINDS)
    grew = {k: rows[-1][k] - rows[0][k] for k in ("RssAnon", "maps_other")}
    assert grew["maps_other"] > 0.5 * grew["RssAnon"], grew  # the rest: links, label map


def test_a_slope_needs_two_counts_in_its_second_half_and_a_kind_is_known() -> None:
    ir = _load()
    with pytest.raises(ValueError, match="at least 4"):
        ir.per_element([{"count": 1, "RssAnon": 1}, {"count": 2, "RssAnon": 2}])
    with pytest.raises(ValueError, match="kind"):
        ir.grow("faiss", [10], 16, 64)
