"""Giving freed heap memory back to the kernel (glibc's ``malloc_trim``).

Under load the memory service frees far more than it keeps: request payloads, decoded
batches, the embedder's activations. glibc keeps freed chunks in its arenas, and a heap
whose top holds a live block (an index that grew meanwhile) cannot shrink from the end,
so the freed bytes stay resident and grow with the load. ``malloc_trim(0)`` returns
every free page of every arena, from the middle of a heap too (``MADV_DONTNEED``).
"""

from __future__ import annotations

import ctypes
from functools import cache
from typing import Any

#: Seconds between trims in the memory service's maintenance loop.
TRIM_EVERY_S = 30.0


@cache
def _trim_fn() -> Any:
    try:
        fn = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def trim() -> bool:
    """Return free heap pages to the kernel; whether any were (False without glibc)."""
    fn = _trim_fn()
    return bool(fn(0)) if fn is not None else False
