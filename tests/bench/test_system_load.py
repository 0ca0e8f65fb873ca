"""bench/system_load.py, 30 seconds of it: the stack under 10 concurrent clients loses,
duplicates and fails nothing.

The figures are the benchmark's own (it counts acknowledged episodes in Postgres by id);
the test only reads them, so it holds no time limit of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from emily.memory.metrics import MemoryMetrics
from emily.observe import start_metrics_server
from tests.bench.helpers import bench_module

pytestmark = pytest.mark.slow


def test_ten_clients_for_thirty_seconds_lose_nothing(tmp_path: Path) -> None:
    r = bench_module("system_load").run(clients=10, duration_s=30.0, n_base=5, root=tmp_path)
    paths = r["paths"]
    assert {p: s["errors"] for p, s in paths.items()} == dict.fromkeys(paths, 0), paths
    assert all(s["n"] > 0 for s in paths.values()), paths  # every path was driven
    assert r["acked_episodes"] > 0
    assert r["lost"] == 0, r["lost_ids"]
    assert r["duplicated"] == 0, r["duplicated_seqs"]
    # cognition's episode outbox drained: nothing acknowledged is still waiting there
    assert r["cognition_pending_at_count"] == 0, r["cognition_episodes"]
    # repeated statements merge into the first one (consolidation); nothing else is gone
    assert r["episodes_in_postgres"] + r["merged"] == r["acked_episodes"]
    # memory's search index follows every kept episode
    assert r["indexed"] >= r["episodes_in_postgres"]


def test_swings_take_the_least_and_greatest_of_each_whole_window() -> None:
    swings = bench_module("system_load").swings
    kib = [700, 650, 790, 660, 800, 680, 900]  # one sample every 10 s
    rows = [(10.0 * i, 100 * i, {"memory": k * 1024}) for i, k in enumerate(kib)]
    # 0-30 s and 30-60 s are whole windows; the sample at 60 s starts one that is not
    assert swings(rows, "memory") == [(0.0, 100, 650.0, 790.0), (30.0, 300, 660.0, 800.0)]


def test_the_kept_series_takes_one_row_per_new_trim_from_memory_s_metrics() -> None:
    sl = bench_module("system_load")
    metrics = MemoryMetrics(CollectorRegistry())
    metrics.embed_shapes.set(7)
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
    assert [(n, b // 2**20, k) for _, n, b, k in sampler.kept_rows] == [
        (100, 610, 7),
        (300, 640, 7),
    ]


def test_kept_growth_is_the_slope_after_trims_against_the_index_alone() -> None:
    sl = bench_module("system_load")
    rows = [(30.0 * i, 5000 + 1000 * i, 700 * 2**20 + 2500 * 1000 * i, 9) for i in range(6)]
    whole, half, alone = sl.kept_growth(rows)
    assert round(whole) == round(half) == 2500
    assert 384 * 4 < alone < 2 * 384 * 4  # grown to 5,000..10,000 elements
    assert all(x != x for x in sl.kept_growth(rows[:3]))  # nan: too few trims
