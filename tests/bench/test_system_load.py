"""bench/system_load.py, 30 seconds of it: the stack under 10 concurrent clients loses,
duplicates and fails nothing.

The figures are the benchmark's own (it counts acknowledged episodes in Postgres by id);
the test only reads them, so it holds no time limit of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

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
