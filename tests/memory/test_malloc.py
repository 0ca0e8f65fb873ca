"""Freed heap memory goes back to the kernel: ``malloc.trim`` and the memory service's
background loop, which calls it."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from emily.memory import malloc
from emily.memory.core import Memory

# 200 MiB in 64 KiB blocks (below glibc's mmap threshold: on the heap), every block
# freed but the last, which pins the heap's top so free() alone cannot shrink it
_PINNED = """
import ctypes
from emily.memory import malloc
from emily.memory.heapdump import proc_status
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


def test_the_background_loop_trims_the_heap(
    memory: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []
    monkeypatch.setattr(malloc, "TRIM_EVERY_S", 0.0)
    monkeypatch.setattr(malloc, "trim", lambda: calls.append(time.monotonic()) or True)
    memory.start_background(period_s=0.01)
    for _ in range(3000):
        if len(calls) >= 3:
            break
        time.sleep(0.01)
    assert len(calls) >= 3 and memory.trims >= 3
