"""Giving freed heap memory back to the kernel (glibc's ``malloc_trim``).

Under load the memory service frees far more than it keeps: request payloads, decoded
batches, the embedder's activations. glibc keeps freed chunks in its arenas, and a heap
whose top holds a live block (an index that grew meanwhile) cannot shrink from the end,
so the freed bytes stay resident and grow with the load. ``malloc_trim(0)`` returns
every free page of every arena, from the middle of a heap too (``MADV_DONTNEED``).

glibc also gives each thread that meets a locked arena a new one, up to eight per core,
and memory freed by one thread stays in its arena. The service's fifty-odd threads
(bus workers, Postgres pool, embedder) so keep many partly free heaps; with two arenas
the freed bytes are found again by the next allocation. :func:`set_arena_max` sets that
bound (``mallopt(M_ARENA_MAX)``) for arenas made afterwards, so the service calls it at
start, before its threads, whatever started it.

Between two trims the resident set also holds whatever was freed since the last one, so
it swings with the load; :func:`resident_bytes` read right after a trim is what the
service keeps, the figure to watch for growth.
"""

from __future__ import annotations

import ctypes
from functools import cache
from pathlib import Path
from typing import Any

#: glibc's ``mallopt`` parameter number of the arena bound (malloc.h).
M_ARENA_MAX = -8


@cache
def _glibc(name: str, *argtypes: Any) -> Any:
    """glibc's function ``name`` returning an int, or ``None`` without glibc."""
    try:
        fn = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):  # not glibc
        return None
    fn.argtypes = list(argtypes)
    fn.restype = ctypes.c_int
    return fn


def trim() -> bool:
    """Return free heap pages to the kernel; whether any were (False without glibc)."""
    fn = _glibc("malloc_trim", ctypes.c_size_t)
    return bool(fn(0)) if fn is not None else False


def set_arena_max(n: int) -> bool:
    """Bound glibc's malloc arenas to ``n`` (``n >= 1``); whether glibc accepted it
    (False without glibc). Arenas that exist already stay."""
    if n < 1:
        raise ValueError(f"an arena bound is 1 or more, not {n}")
    fn = _glibc("mallopt", ctypes.c_int, ctypes.c_int)
    return bool(fn(M_ARENA_MAX, n)) if fn is not None else False


#: The lines of ``/proc/<pid>/status`` that :func:`proc_status` reads, in kB there.
STATUS_KIB = ("VmRSS", "RssAnon", "RssFile", "RssShmem")


def proc_status(status: Path = Path("/proc/self/status")) -> dict[str, int]:
    """``VmRSS``, ``RssAnon``, ``RssFile``, ``RssShmem`` (bytes) and ``Threads`` of the
    process whose status file is ``status`` (another's: ``/proc/<pid>/status``); empty
    where it cannot be read (gone, or not Linux), and without the lines it lacks."""
    try:
        text = status.read_text()
    except OSError:
        return {}
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in STATUS_KIB:
            out[key] = int(value.split()[0]) * 1024
        elif key == "Threads":
            out[key] = int(value)
    return out


def resident_bytes(status: Path = Path("/proc/self/status")) -> int:
    """This process's resident set (``VmRSS``) in bytes; 0 where ``status`` cannot be
    read or has no such line (not Linux)."""
    return proc_status(status).get("VmRSS", 0)
