"""bench/system_load_memory.py: the resident-memory series of the whole-stack load and
their growth per episode against the index alone."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from emily.memory.metrics import MemoryMetrics
from emily.observe import start_metrics_server
from tests.bench.helpers import bench_module


def test_swings_take_the_least_and_greatest_of_each_whole_window() -> None:
    swings = bench_module("system_load_memory").swings
    kib = [700, 650, 790, 660, 800, 680, 900]  # one sample every 10 s
    rows = [(10.0 * i, 100 * i, {"memory": k * 1024}) for i, k in enumerate(kib)]
    # 0-30 s and 30-60 s are whole windows; the sample at 60 s starts one that is not
    assert swings(rows, "memory") == [(0.0, 100, 650.0, 790.0), (30.0, 300, 660.0, 800.0)]


def test_the_kept_series_takes_one_row_per_new_trim_from_memory_s_metrics() -> None:
    sl = bench_module("system_load_memory")
    metrics = MemoryMetrics(CollectorRegistry())
    metrics.embed_shapes.set(7)
    metrics.index_slots.set(950)
    server = start_metrics_server(metrics.registry)
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        episodes = iter(range(0, 1000, 100))
        sampler = sl.Sampler({}, lambda: next(episodes), lambda: sl.memory_kept(url))
        # a trim before the first sample: when it happened is unknown, so it is no row
        metrics.heap_trims.inc()
        metrics.resident_after_trim.set(600 * 2**20)
        for trims, kept in ((0, 0), (1, 610), (0, 0), (2, 640)):
            metrics.heap_trims.inc(trims)
            if kept:
                metrics.resident_after_trim.set(kept * 2**20)
            sampler.sample()
    finally:
        server.close()
    assert [(n, b // 2**20, k, slots) for _, n, b, k, slots in sampler.kept_rows] == [
        (100, 610, 7, 950),
        (300, 640, 7, 950),
    ]


def test_kept_growth_sets_the_slope_against_the_index_grown_to_the_same_slots() -> None:
    sl = bench_module("system_load_memory")
    # a quarter more slots than episodes: consolidation removed every fifth one
    rows = [
        (30.0 * i, n, 700 * 2**20 + 2500 * (n - 5000), 9, n * 5 // 4)
        for i, n in enumerate(range(5000, 11000, 1000))
    ]
    g = sl.kept_growth(rows)
    assert round(g.whole) == round(g.half) == 2500
    # the index alone per live episode: 1.25 slots of a vector and its links each
    assert 1.25 * 384 * 4 < g.alone < 1.25 * 2 * 384 * 4
    assert 1.25 * 384 * 4 < g.alone_whole < 1.25 * 2 * 384 * 4
    # memory's excess is its slope less the index's, with the scatter of the difference
    (excess, se), (excess_half, se_half) = g.excess, g.excess_half
    assert excess == pytest.approx(g.whole - g.alone_whole, abs=1.0)
    assert excess_half == pytest.approx(g.half - g.alone, abs=1.0)
    assert 0 <= se < 1000 and se_half >= 0
    # the index alone at each row, the excess's other term
    assert len(g.alone_bytes) == len(rows) and list(g.alone_bytes) == sorted(g.alone_bytes)
    short = sl.kept_growth(rows[:3])  # nan: too few trims
    assert short.whole != short.whole and short.excess[0] != short.excess[0]


def test_kept_growth_has_no_index_baseline_with_fewer_than_four_distinct_counts() -> None:
    sl = bench_module("system_load_memory")
    # the load paused: four trims at two episode counts give a slope, but the index
    # alone cannot be grown to fewer than four counts
    rows = [
        (
            30.0 * i,
            5000 + 1000 * (i // 2),
            700 * 2**20 + 2**20 * (i // 2),
            9,
            5000 + 1000 * (i // 2),
        )
        for i in range(4)
    ]
    g = sl.kept_growth(rows)
    assert abs(g.whole - 2**20 / 1000) < 1e-6
    assert g.half != g.half and g.alone != g.alone  # the second half holds one count
    assert g.excess[0] != g.excess[0]


def test_quiet_kept_reads_the_first_trim_after_the_stack_settled() -> None:
    sl = bench_module("system_load_memory")
    order: list[str] = []
    reads = iter(
        [(4, 900, 9, 80), (4, 900, 9, 80), (4, 900, 9, 80), (5, 700, 10, 81), (6, 650, 10, 81)]
    )

    def settled() -> int:
        order.append("settled")
        return 1234

    def kept() -> tuple[int, int, int, int]:
        order.append("kept")
        return next(reads)

    assert sl.quiet_kept(settled, kept, poll_s=0.0) == (1234, 700, 10, 81)
    assert order == ["settled", "kept", "kept", "kept", "kept"]


def test_quiet_kept_says_when_no_trim_comes() -> None:
    sl = bench_module("system_load_memory")
    with pytest.raises(RuntimeError, match="no heap trim within 0 s"):
        sl.quiet_kept(lambda: 1, lambda: (3, 900, 9, 80), limit_s=0.0, poll_s=0.0)
