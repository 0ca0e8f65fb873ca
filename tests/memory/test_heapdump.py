"""The opt-in heap dump of the memory service: off by default, and what a dump holds."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from emily.ids import uuid7
from emily.memory import heapdump
from emily.memory.core import Memory
from emily.memory.index import AnnIndex
from tests.memory.helpers import records


def test_without_the_variable_nothing_is_installed(
    memory: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(heapdump.DIAG_ENV, raising=False)
    before = signal.getsignal(signal.SIGUSR1)
    assert heapdump.install(memory) is None
    assert signal.getsignal(signal.SIGUSR1) is before


def test_a_dump_names_the_kernels_glibcs_and_memorys_own_figures(
    memory: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(heapdump.DIAG_ENV, "1")
    monkeypatch.delenv(heapdump.TRACE_ENV, raising=False)
    dumper = heapdump.install(memory)
    assert dumper is not None
    try:
        assert memory.indexer is not None and memory.indexer.ready.wait(60)
        memory._insert(records(50))
        data = dumper.dump(trim=True)
        assert data["proc"]["VmRSS"] > 0 and data["proc"]["RssAnon"] > 0
        assert data["malloc"]["in_use"] > 0 and data["malloc"]["arenas"] >= 1
        maps = data["maps"]
        assert maps["brk"]["rss"] > 0 and maps["python_arenas"]["maps"] >= 1
        assert maps["stacks"]["maps"] >= 2  # the main thread's and the dumper's at least
        assert {"stats.count", "stats.ids.keys", "id_map.keys"} <= set(
            heapdump.memory_arrays(memory)
        )
        blocks = data["large_blocks"]
        assert sum(b["rss"] for b in blocks) <= maps["other"]["rss"]
        assert all(set(b) == {"size", "rss", "owner"} for b in blocks)
        s = data["structures"]
        assert s["embed_shapes"] == (0 if memory.embedder is None else len(memory.embedder.shapes))
        assert s["indexed"] == 50 and s["labels"] == 50
        # the layout estimate grows with the elements held: base layer alone is 1.6 KB each
        assert s["hnsw_bytes"] >= 50 * (2 * 8 * 4 + 384 * 4)
        assert data["after_trim"]["VmRSS"] > 0 and data["after_trim"]["RssAnon"] > 0
        assert json.loads(dumper.path.read_text())["seq"] == 1
        # the signal asks for the next one
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(600):
            if json.loads(dumper.path.read_text())["seq"] == 2:
                break
            time.sleep(0.05)
        assert json.loads(dumper.path.read_text())["seq"] == 2
    finally:
        dumper.stop()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_hnsw_estimate_counts_elements_and_slots() -> None:
    one = heapdump.hnsw_bytes(1000, 1000, 16, 384)
    assert heapdump.hnsw_bytes(2000, 2000, 16, 384) == pytest.approx(2 * one, rel=0.01)
    per = one / 1000  # about 1.7 KB of layout plus the label map and per-slot locks
    assert 1700 < per < 1900
    assert heapdump.hnsw_bytes(1000, 2000, 16, 384) - one == 1000 * 52


def test_a_frame_count_that_is_not_a_number_is_refused(
    memory: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(heapdump.DIAG_ENV, "1")
    monkeypatch.setenv(heapdump.TRACE_ENV, "lots")
    with pytest.raises(ValueError, match="number of frames"):
        heapdump.install(memory)


_SMAPS = """\
55d000000000-55d000021000 rw-p 00000000 00:00 0                          [heap]
Rss:                 100 kB
7f0000000000-7f0000400000 rw-p 00000000 00:00 0
Rss:                4000 kB
7f0000400000-7f0004000000 ---p 00000000 00:00 0
Rss:                   0 kB
7f1000100000-7f1000200000 rw-p 00000000 00:00 0
Rss:                 700 kB
7f1000200000-7f1000a00000 rw-p 00000000 00:00 0
Rss:                  40 kB
7f1000a01000-7f1001200000 rw-p 00000000 00:00 0
Rss:                  12 kB
7f1002000000-7f1002300000 rw-p 00000000 00:00 0
Rss:                3072 kB
7f1003000000-7f1003001000 rw-p 00001000 08:01 1234                       /usr/lib/libc.so.6
Rss:                   4 kB
7f1003001000-7f1003002000 r--p 00000000 00:00 0
Rss:                   4 kB
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]
Rss:                  20 kB
"""


def test_anonymous_maps_are_told_apart_by_size_and_alignment(tmp_path: Path) -> None:
    smaps = tmp_path / "smaps"
    smaps.write_text(_SMAPS)
    got = heapdump.anon_maps(str(smaps))
    kib = 1024
    assert got == {
        "brk": {"rss": 100 * kib, "maps": 1},
        "glibc_arenas": {"rss": 4000 * kib, "maps": 1},  # 64 MiB aligned; its reserve skipped
        "python_arenas": {"rss": 700 * kib, "maps": 1},  # exactly 1 MiB
        "stacks": {"rss": (40 + 12 + 20) * kib, "maps": 3},  # 8 MiB, less a guard, [stack]
        "other": {"rss": 3072 * kib, "maps": 1},  # a large block; the file and r-- maps skipped
    }
    assert heapdump.anon_maps(str(tmp_path / "missing")) == {}


def test_large_blocks_are_listed_largest_first_with_the_arrays_they_hold(tmp_path: Path) -> None:
    smaps = tmp_path / "smaps"
    smaps.write_text(_SMAPS)
    inside, outside = 0x7F1002000000 + 4096, 0x7F1003000000
    owners = {
        "b": (inside, inside + 64),
        "a": (inside, inside + 64),
        "c": (outside, outside + 64),  # the file's map, not a large block
        "d": (0x7F1001FFF000, 0x7F1002000010),  # begins before the block, ends in it
    }
    got = heapdump.large_blocks(owners, str(smaps))
    assert got == [{"size": 0x300000, "rss": 3072 * 1024, "owner": "a,b,d"}]
    assert heapdump.large_blocks(None, str(smaps), min_rss=4 << 20) == []
    # one read serves both
    both = heapdump.maps_and_blocks(owners, str(smaps))
    assert both == (heapdump.anon_maps(str(smaps)), got)
    assert heapdump.large_blocks(None, str(tmp_path / "missing")) == []


def test_array_owners_name_each_arrays_data_and_skip_empty_ones() -> None:
    a = np.ones(5 << 20)  # 40 MiB: above glibc's largest mmap threshold, a map of its own
    got = heapdump.array_owners({"a": a, "empty": np.empty(0), "none": None})
    assert got == {"a": (a.ctypes.data, a.ctypes.data + a.nbytes)}
    # found by its address among this process's maps
    owned = [b for b in heapdump.large_blocks(got) if b["owner"] == "a"]
    assert len(owned) == 1 and owned[0]["size"] >= a.nbytes, owned
    index = AnnIndex(capacity=16)
    index.add([uuid7()], np.ones((1, 384), np.float32) / np.sqrt(384))
    names = heapdump.index_arrays(index)
    assert {"id_map.keys", "id_map.sorted", "scopes.user", "scopes.row"} <= set(names)
    assert any(n.startswith("scopes.part") and n.endswith(".labels") for n in names)
