"""Access statistics: decay, pruning below the floor, files old and new, their size."""

from __future__ import annotations

import json
import logging
import tracemalloc
import uuid
from pathlib import Path

import pytest

from emily.ids import uuid7
from emily.memory.stats import AccessStats

DAY = 86400.0


def test_counts_decay_by_half_each_half_life(tmp_path: Path) -> None:
    stats = AccessStats(tmp_path / "access.npy")
    key = uuid7()
    assert stats.touch(key, 0.0).count == 1.0
    assert stats.touch(key, DAY).count == pytest.approx(1.5)
    assert stats.touch_many([key, key], DAY).__len__() == 2
    got = stats.get(key)
    assert got is not None and got.count == pytest.approx(3.5) and got.last == DAY
    assert stats.get(uuid7()) is None
    assert stats.lasts([key, uuid7()]).tolist() == [DAY, float("-inf")]


def test_entries_decayed_below_the_floor_are_forgotten_unless_cached(tmp_path: Path) -> None:
    stats = AccessStats(tmp_path / "access.npy")
    old, cached, fresh = uuid7(), uuid7(), uuid7()
    for key in (old, cached):
        stats.touch(key, 0.0)
    stats.touch(fresh, 5 * DAY)
    # five half-lives: 1/32 of an access, below the floor of 1/16
    stats.save({cached: "L1"}, now=5 * DAY)
    assert old not in stats and cached in stats and fresh in stats
    back = AccessStats(tmp_path / "access.npy")
    assert back.load() == {cached: "L1", fresh: "L3"}
    assert len(back) == 2


def test_many_pruned_entries_are_compacted_away(tmp_path: Path) -> None:
    stats = AccessStats(tmp_path / "access.npy")
    keys = [uuid7() for _ in range(3000)]
    stats.touch_many(keys, 0.0)
    keep = stats.touch(keys[0], 10 * DAY)
    assert stats.prune(set(), 10 * DAY) == 2999
    assert len(stats) == 1 and stats._slots.used == 1  # rebuilt, not 2,999 dead slots
    assert stats.get(keys[0]) == keep
    stats.touch(uuid7(), 10 * DAY)
    assert len(stats) == 2


def test_the_json_file_of_the_earlier_layout_still_loads(tmp_path: Path) -> None:
    a, b = uuid7(), uuid7()
    legacy = tmp_path / "access.json"
    legacy.write_text(json.dumps({str(a): [2.5, 100.0, "L2"], str(b): [1, 50.0, "L3"]}))
    stats = AccessStats(tmp_path / "access.npy")
    assert stats.load() == {a: "L2", b: "L3"}
    got = stats.get(a)
    assert got is not None and (got.count, got.last) == (2.5, 100.0)
    stats.save({a: "L2"})
    assert not legacy.exists() and (tmp_path / "access.npy").is_file()
    again = AccessStats(tmp_path / "access.npy")
    assert again.load() == {a: "L2", b: "L3"}


def test_a_damaged_file_starts_the_tiers_cold(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "access.npy").write_bytes(b"not numpy")
    stats = AccessStats(tmp_path / "access.npy")
    with caplog.at_level(logging.WARNING):
        assert stats.load() == {}
    assert "tiers start cold" in caplog.text
    (tmp_path / "access.npy").unlink()
    (tmp_path / "access.json").write_text(json.dumps({str(uuid.uuid4()): [1, 2, "L9"]}))
    assert stats.load() == {}


def test_an_entry_costs_a_few_dozen_bytes(tmp_path: Path) -> None:
    stats = AccessStats(tmp_path / "access.npy")
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for t in range(40):  # recalled episodes' ids, made here and dropped by the caller
            stats.touch_many([uuid7() for _ in range(1000)], float(t))
        per = (tracemalloc.get_traced_memory()[0] - base) / len(stats)
    finally:
        tracemalloc.stop()
    # id map about 40 B, count and time 12 B, with doubling slack; a dict of UUIDs to
    # dataclasses takes about 300
    assert per < 130, f"{per:.0f} B per entry"
