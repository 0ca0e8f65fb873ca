"""Reading the memory service's heap dumps: asking for one, and each part's growth."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from tests.bench.helpers import bench_module


def _dump(episodes: int, anon: int, in_use: int) -> dict[str, Any]:
    kernel = {"VmRSS": anon + 50, "RssAnon": anon, "RssFile": 50}
    return {
        "episodes": episodes,
        "proc": kernel,
        "after_trim": kernel,
        "malloc": {"in_use": in_use, "free": 7},
        "maps": {"python_arenas": {"rss": 1000, "maps": 1}},
        "python": {},
        "structures": {"hnsw_bytes": 2 * episodes},
    }


def test_each_part_grows_by_its_own_slope_against_the_index() -> None:
    heap = bench_module("heap_dumps")
    dumps = [_dump(n, 1000 + 3 * n, 500 + 2 * n) for n in (1000, 2000, 3000, 4000, 5000, 6000)]
    episodes = [d["episodes"] for d in dumps]
    rows = {r[0]: r[1:] for r in heap.component_rows(episodes, dumps, 2.0)}
    assert rows["RssAnon after malloc_trim"] == ("3", "3", "1.50x")
    assert rows["glibc malloc in use"] == ("2", "2", "1.00x")
    assert rows["anon maps: Python's arenas"][0] == "0"
    assert rows["anon maps: glibc's other arenas"][0] == "0"  # absent from these dumps
    assert rows["hnswlib (layout estimate)"][1] == "2"
    whole, half = heap.growth(episodes[:3], dumps[:3], heap.KEPT)
    assert whole == pytest.approx(3.0) and math.isnan(half)  # two points in the 2nd half: too few


def test_a_dump_is_asked_for_by_signal_and_waited_for(tmp_path: Path) -> None:
    heap = bench_module("heap_dumps")
    path = tmp_path / "heap.json"
    seen: list[int] = []

    def write(signum: int, _frame: FrameType | None) -> None:
        seen.append(signum)
        path.write_text(json.dumps({"seq": len(seen)}))

    old = signal.signal(signal.SIGUSR2, write)
    try:
        assert heap.dump(os.getpid(), path, 1)["seq"] == 1
        assert heap.dump(os.getpid(), path, 2)["seq"] == 2
        signal.signal(signal.SIGUSR2, lambda *_: None)  # asked, never written
        with pytest.raises(SystemExit, match="no heap dump 3"):
            heap.dump(os.getpid(), path, 3, wait_s=0.3)
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert seen == [signal.SIGUSR2, signal.SIGUSR2]


def test_each_dump_is_one_row_of_the_checkpoint_table() -> None:
    heap = bench_module("heap_dumps")
    dumps = [_dump(n, 2**20 * n, 2**20) for n in (1, 2)]
    for d in dumps:
        d["structures"].update(l0=3, l1=40, l2=500, access_stats=1234, embed_shapes=14)
    lines = heap.checkpoint_table([1000, 2000], dumps).splitlines()
    assert lines[0].split()[:3] == ["episodes", "RSS", "MiB"] and "embedder shapes" in lines[0]
    assert len(lines) == 4  # the header, its rule and one row per dump
    assert lines[3].split()[:3] == ["2,000", "2.0", "2.0"] and "3/40/500" in lines[3]
    assert lines[3].split()[-2:] == ["1,234", "14"]
