"""Freed heap memory goes back to the kernel: ``malloc.trim`` and the memory service's
background loop, which calls it."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from emily.errors import ConfigError
from emily.memory import malloc
from emily.memory.config import MemoryConfig
from emily.memory.core import Memory
from emily.memory.metrics import MemoryMetrics
from emily.memory.store import PgStore

# 200 MiB in 64 KiB blocks (below glibc's mmap threshold: on the heap), every block
# freed but the last, which pins the heap's top so free() alone cannot shrink it
_PINNED = """
import ctypes
from emily.memory import malloc
from emily.memory.malloc import proc_status
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
blocks = [libc.malloc(65536) for _ in range(3200)]
for b in blocks:
    ctypes.memset(b, 1, 65536)
for b in blocks[:-1]:
    libc.free(b)
before = proc_status()["VmRSS"]
released = malloc.trim()
print(int(released), before - proc_status()["VmRSS"])
"""


def test_trim_gives_freed_heap_pages_back() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PINNED], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "1"
    assert int(out[1]) > 150 * 2**20, f"RSS fell by {int(out[1]) / 2**20:.0f} MiB only"


def test_the_background_loop_trims_the_heap_every_heap_trim_s(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = MemoryConfig(state=tmp_path / "memory", hnsw_m=8, heap_trim_s=0.05)
    memory = Memory(cfg, PgStore(pg_dsn, cfg), None, metrics=MemoryMetrics())
    calls: list[float] = []
    monkeypatch.setattr(malloc, "trim", lambda: calls.append(time.monotonic()) or True)
    try:
        memory.start_background(period_s=0.01)
        for _ in range(3000):
            if len(calls) >= 3:
                break
            time.sleep(0.01)
    finally:
        memory.close()
    assert len(calls) >= 3 and memory.trims >= 3
    gaps = np.diff(calls)
    assert gaps.min() >= 0.05  # none sooner than heap_trim_s after the one before


def test_proc_status_reads_every_line_it_names_in_bytes(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text(
        "Name:\tpython\nVmRSS:\t 300 kB\nRssAnon:\t 200 kB\nRssFile:\t 90 kB\n"
        "RssShmem:\t 10 kB\nThreads:\t7\nVmSwap:\t 5 kB\n"
    )
    assert malloc.proc_status(status) == {
        "VmRSS": 300 * 1024,
        "RssAnon": 200 * 1024,
        "RssFile": 90 * 1024,
        "RssShmem": 10 * 1024,
        "Threads": 7,
    }
    assert malloc.proc_status(tmp_path / "absent") == {}
    mine = malloc.proc_status(Path(f"/proc/{os.getpid()}/status"))
    assert set(mine) == {*malloc.STATUS_KIB, "Threads"} and mine["Threads"] >= 1


def test_resident_bytes_reads_the_kernel_s_figure(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmRSS:\t  123456 kB\nRssAnon:\t 1 kB\n")
    assert malloc.resident_bytes(status) == 123456 * 1024
    status.write_text("Name:\tpython\n")
    assert malloc.resident_bytes(status) == 0
    assert malloc.resident_bytes(tmp_path / "absent") == 0
    assert malloc.resident_bytes() > 10 * 2**20  # this interpreter, numpy loaded


def _value(memory: Memory, name: str) -> float:
    got = memory.metrics.registry.get_sample_value(name)
    assert got is not None, f"{name} is not exported"
    return got


def test_a_heap_trim_exports_what_it_gave_back_and_the_resident_set_after_it(
    memory: Memory,
) -> None:
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(65536) for _ in range(1600)]  # 100 MiB on the main heap
    for b in blocks:
        ctypes.memset(b, 1, 65536)
    for b in blocks[:-1]:
        libc.free(b)
    try:
        after = memory.trim_heap()
    finally:
        libc.free(blocks[-1])
    assert _value(memory, "emily_memory_heap_trims_total") == 1
    assert _value(memory, "emily_memory_resident_after_trim_bytes") == after > 0
    returned = _value(memory, "emily_memory_heap_returned_bytes_total")
    assert returned > 75 * 2**20, f"the trim gave back {returned / 2**20:.0f} MiB only"
    assert abs(after - malloc.resident_bytes()) < 50 * 2**20


# eight threads allocating at once; glibc gives each new thread an arena of its own
# until its bound (eight per core by default)
_THREADS = """
import ctypes, sys, threading
from emily.memory import malloc
from emily.memory.heapdump import mallinfo2
if int(sys.argv[1]):
    assert malloc.set_arena_max(int(sys.argv[1]))
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
start = threading.Barrier(8)
def work():
    start.wait()
    for _ in range(2000):
        libc.free(libc.malloc(4096))
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(mallinfo2()["arenas"])
"""


def _arenas(bound: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _THREADS, str(bound)], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def test_the_arena_bound_holds_for_threads_started_after_it() -> None:
    assert _arenas(1) == 1
    assert _arenas(2) <= 2 < _arenas(0)
    with pytest.raises(ValueError, match="1 or more"):
        malloc.set_arena_max(0)


def test_the_setting_has_a_range() -> None:
    assert MemoryConfig().malloc_arena_max == 2
    assert MemoryConfig(malloc_arena_max=0).malloc_arena_max == 0
    for bad in (-1, 1025):
        with pytest.raises(ConfigError, match="malloc_arena_max"):
            MemoryConfig(malloc_arena_max=bad)
