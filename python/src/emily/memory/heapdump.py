"""Opt-in attribution of the memory service's resident memory, for ``bench/memory_rss.py``.

Off unless asked for, so the served path is unchanged:

- ``EMILY_MEMORY_DIAG=1``: on ``SIGUSR1`` the service writes ``<memory state>/heap.json``
  (replaced atomically; ``seq`` counts the dumps): the kernel's view (``VmRSS``,
  ``RssAnon``, ``RssFile``), glibc's (:func:`mallinfo2`: bytes in use and bytes free but
  kept, and how many malloc arenas there are), the anonymous mappings by kind
  (:func:`anon_maps`: glibc's arenas, Python's, thread stacks, the rest), the large
  blocks one by one with the arrays they hold (:func:`large_blocks`), the sizes of
  memory's own structures
  (index, scope partitions, tiers, access statistics) and, with tracemalloc on, the
  Python allocations made since start-up by file. ``SIGUSR2`` does the same, then calls
  ``malloc_trim(0)`` and adds the kernel's view after it (``after_trim``; what glibc
  gave back is the difference).
- ``EMILY_MEMORY_TRACEMALLOC=N`` (with the above): trace Python allocations, ``N``
  frames each, from start-up on. Tracing costs time and memory of its own.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import math
import os
import re
import signal
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from emily.memory import malloc
from emily.memory.malloc import proc_status

if TYPE_CHECKING:
    from emily.memory.core import Memory
    from emily.memory.index import AnnIndex

log = logging.getLogger(__name__)
DIAG_ENV = "EMILY_MEMORY_DIAG"
TRACE_ENV = "EMILY_MEMORY_TRACEMALLOC"
DUMP_FILE = "heap.json"


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _libc() -> Any:
    return ctypes.CDLL(None)


def mallinfo2() -> dict[str, int]:
    """glibc's heap totals over every arena (bytes): ``in_use`` (small blocks in use plus
    mmapped blocks), ``free`` (freed, kept in the arenas), ``mmapped``, ``arena``
    (bytes the arenas hold from the kernel), ``arenas`` (how many); ``{}`` without glibc."""
    try:
        libc = _libc()
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return {}
    fn.restype = _MallInfo2
    m = fn()
    return {
        "in_use": int(m.uordblks + m.hblkhd),
        "free": int(m.fordblks),
        "mmapped": int(m.hblkhd),
        "arena": int(m.arena),
        "arenas": _arena_count(libc),
    }


def _arena_count(libc: Any) -> int:
    """Heaps ``malloc_info`` lists (one per arena), or -1 when it cannot be read."""
    with tempfile.NamedTemporaryFile("rb", suffix=".xml") as tmp:
        fopen, fclose = libc.fopen, libc.fclose
        fopen.restype = ctypes.c_void_p
        fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        fclose.argtypes = [ctypes.c_void_p]
        fh = fopen(tmp.name.encode(), b"w")
        if not fh:
            return -1
        libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.malloc_info(0, fh)
        fclose(fh)
        return len(re.findall(rb'<heap nr="\d+">', tmp.read()))


#: glibc's non-main arenas are heaps of this size, each aligned to it (``HEAP_MAX_SIZE``
#: on 64-bit).
GLIBC_HEAP = 64 << 20
#: Python's small-object allocator takes its arenas from the kernel in maps of this size.
PYTHON_ARENA = 1 << 20
#: The default thread stack (``ulimit -s``) that glibc maps per thread.
THREAD_STACK = 8 << 20
#: The kinds :func:`anon_maps` sorts anonymous memory into.
MAP_KINDS = ("brk", "glibc_arenas", "python_arenas", "stacks", "other")
#: The fewest resident bytes of a large block that a dump lists.
LARGE_MIN = 64 << 10
_MAP_HEAD = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)\s*(.*)$")


def _anon(smaps: str) -> list[tuple[int, int, str, int]] | None:
    """Every anonymous, writable map of ``smaps``: ``(start, end, kind, rss)``, the kind
    as :func:`anon_maps` names it; ``None`` when ``smaps`` cannot be read."""
    try:
        with open(smaps) as fh:
            text = fh.read()
    except OSError:
        return None
    out: list[tuple[int, int, str, int]] = []
    kind: str | None = None
    start = end = 0
    for line in text.splitlines():
        head = _MAP_HEAD.match(line)
        if head is not None:
            start, end = int(head[1], 16), int(head[2], 16)
            perms, inode, name = head[3], int(head[4]), head[5].strip()
            kind = None
            if "w" not in perms or (inode != 0 and not name.startswith("[")):
                continue  # read-only, or a file's pages
            if name == "[heap]":
                kind = "brk"
            elif name == "[stack]" or (not name and 0 <= THREAD_STACK - (end - start) <= 65536):
                kind = "stacks"
            elif name:
                continue  # [vvar], [anon:...] and the like
            elif start % GLIBC_HEAP == 0 and end - start <= GLIBC_HEAP:
                kind = "glibc_arenas"
            elif end - start == PYTHON_ARENA:
                kind = "python_arenas"
            else:
                kind = "other"
        elif kind is not None and line.startswith("Rss:"):
            out.append((start, end, kind, int(line.split()[1]) * 1024))
            kind = None
    return out


def anon_maps(smaps: str = "/proc/self/smaps") -> dict[str, dict[str, int]]:
    """Resident bytes (``rss``) and mappings (``maps``) of the anonymous, writable
    memory in ``smaps``, by kind: ``brk`` (glibc's main arena), ``glibc_arenas`` (maps
    aligned to :data:`GLIBC_HEAP`), ``python_arenas`` (maps of :data:`PYTHON_ARENA`),
    ``stacks`` (``[stack]``, and maps of :data:`THREAD_STACK` less a guard page),
    ``other`` (glibc's large blocks, libraries' own maps): :data:`MAP_KINDS`; ``{}`` when
    ``smaps`` cannot be read. Guessed from size and alignment, so a large block of
    exactly one of those sizes is misfiled."""
    return _by_kind(_anon(smaps))


def _by_kind(maps: list[tuple[int, int, str, int]] | None) -> dict[str, dict[str, int]]:
    if maps is None:
        return {}
    out = {k: {"rss": 0, "maps": 0} for k in MAP_KINDS}
    for _, _, kind, rss in maps:
        out[kind]["maps"] += 1
        out[kind]["rss"] += rss
    return out


def large_blocks(
    owners: dict[str, tuple[int, int]] | None = None,
    smaps: str = "/proc/self/smaps",
    min_rss: int = LARGE_MIN,
) -> list[dict[str, Any]]:
    """The large blocks (``other`` maps of :func:`anon_maps`) of at least ``min_rss``
    resident bytes, largest first: ``size`` and ``rss`` in bytes, and ``owner``, the
    names of ``owners`` (name to the address range of its data, as :func:`array_owners`
    gives) whose data overlaps the map, joined by commas (empty when none does). The
    kernel may split one block into several maps (a first page apart from the rest),
    so an owner is matched by overlap, not by its first address."""
    return _large(_anon(smaps), owners, min_rss)


def _large(
    maps: list[tuple[int, int, str, int]] | None,
    owners: dict[str, tuple[int, int]] | None,
    min_rss: int,
) -> list[dict[str, Any]]:
    found = []
    for start, end, kind, rss in maps or []:
        if kind != "other" or rss < min_rss:
            continue
        names = sorted(n for n, (lo, hi) in (owners or {}).items() if lo < end and start < hi)
        found.append({"size": end - start, "rss": rss, "owner": ",".join(names)})
    return sorted(found, key=lambda b: (-b["rss"], b["owner"]))


def maps_and_blocks(
    owners: dict[str, tuple[int, int]] | None = None, smaps: str = "/proc/self/smaps"
) -> tuple[dict[str, dict[str, int]], list[dict[str, Any]]]:
    """:func:`anon_maps` and :func:`large_blocks` from one read of ``smaps``, so that the
    blocks listed are among the maps counted."""
    maps = _anon(smaps)
    return _by_kind(maps), _large(maps, owners, LARGE_MIN)


def array_owners(arrays: dict[str, np.ndarray[Any, Any] | None]) -> dict[str, tuple[int, int]]:
    """Each array's data, ``(first address, one past its last byte)``, by name, for
    :func:`large_blocks` (``None`` and empty arrays skipped)."""
    return {
        name: (int(a.ctypes.data), int(a.ctypes.data) + a.nbytes)
        for name, a in arrays.items()
        if a is not None and a.size
    }


def index_arrays(index: AnnIndex) -> dict[str, np.ndarray[Any, Any] | None]:
    """The NumPy arrays an index keeps for every slot: its id map's and scope table's
    columns and each user partition's labels and vectors, by name."""
    ids = {f"id_map.{n}": a for n, a in index.label_of.arrays().items()}
    return {**ids, **{f"scopes.{n}": a for n, a in index.scopes.arrays().items()}}


def hnsw_bytes(count: int, capacity: int, m: int, dim: int) -> int:
    """Bytes hnswlib holds for ``count`` elements in an index of ``capacity`` slots:
    the base layer (``2m`` links, the vector and the label per element), the label map
    (about 48 B an element), upper-layer links (a ``1/ln m`` share of elements), and per
    slot a lock (40 B), a level (4 B) and a link-list pointer (8 B)."""
    per = 2 * m * 4 + 4 + dim * 4 + 8
    upper = int(count / max(1.0, math.log(m))) * (m * 4 + 4)
    return count * (per + 48) + upper + capacity * 52


def structures(memory: Memory) -> dict[str, Any]:
    """Sizes of memory's own structures (entries, and bytes where they are arrays)."""
    tiers = memory.tiers
    out: dict[str, Any] = {
        "l0": len(tiers.l0),
        "l1": len(tiers.l1_data),
        "l2": len(tiers.l2),
        "l2_mapped_bytes": tiers.l2.size * (tiers.l2.slot_bytes + 384 * 4),
        "tier_of": len(tiers.tier_of),
        "access_stats": len(tiers.stats),
        "outbox_pending": memory.outbox.pending(),
        "pending_moves": memory.events.pending_moves(),
        "embed_shapes": 0 if memory.embedder is None else len(memory.embedder.shapes),
    }
    if memory.indexer is not None:
        index = memory.indexer.index
        scopes = index.scopes
        parts = list(scopes.parts.values())
        out.update(
            indexed=len(index),
            labels=index.label_of.used,
            deleted=index.label_of.used - len(index),
            id_map_bytes=index.label_of.nbytes(),
            capacity=index.capacity,
            hnsw_bytes=hnsw_bytes(
                index.label_of.used, index.capacity, index.params.m, index.params.dim
            ),
            parts=len(parts),
            part_vec_bytes=sum(0 if p.vecs is None else p.vecs.nbytes for p in parts),
            part_graphs=sum(p.graph is not None for p in parts),
            scope_array_bytes=sum(
                a.nbytes
                for a in (
                    scopes.user,
                    scopes.agent,
                    scopes.session,
                    scopes.role,
                    scopes.act,
                    scopes.row,
                )
            )
            + sum(p.labels.nbytes for p in parts),
        )
    return out


def memory_arrays(memory: Memory) -> dict[str, np.ndarray[Any, Any] | None]:
    """:func:`index_arrays` of memory's index, and its access statistics' columns."""
    out: dict[str, np.ndarray[Any, Any] | None] = {
        f"stats.{n}": a for n, a in memory.tiers.stats.arrays().items()
    }
    if memory.indexer is not None:
        out.update(index_arrays(memory.indexer.index))
    return out


def python_heap(top: int = 25) -> dict[str, Any]:
    """Python allocations traced since start-up, by file (top ``top``), and the gc-tracked
    objects made since start-up by type (the start-up heap is frozen, so not counted)."""
    out: dict[str, Any] = {}
    if tracemalloc.is_tracing():
        snap = tracemalloc.take_snapshot()
        stats = snap.statistics("filename")
        out["traced_bytes"] = sum(s.size for s in stats)
        out["by_file"] = [
            {"file": str(s.traceback[0].filename), "bytes": s.size, "blocks": s.count}
            for s in stats[:top]
        ]
        out["by_line"] = [
            {"line": str(s.traceback[0]), "bytes": s.size, "blocks": s.count}
            for s in snap.statistics("lineno")[:top]
        ]
    kinds = Counter(type(o).__name__ for o in gc.get_objects())
    out["objects"] = dict(kinds.most_common(top))
    return out


def snapshot(memory: Memory, seq: int) -> dict[str, Any]:
    """One dump (see the module docstring)."""
    maps, blocks = maps_and_blocks(array_owners(memory_arrays(memory)))
    return {
        "seq": seq,
        "at": time.time(),
        "proc": proc_status(),
        "malloc": mallinfo2(),
        "maps": maps,
        "large_blocks": blocks,
        "structures": structures(memory),
        "python": python_heap(),
    }


class HeapDumper:
    """Writes :func:`snapshot` to ``<memory state>/heap.json`` on ``SIGUSR1``/``SIGUSR2``.

    The signal handler only records the signal (it runs between any two bytecodes of
    the main thread); a daemon thread does the work.
    """

    def __init__(self, memory: Memory) -> None:
        self.memory = memory
        self.path = memory.cfg.root / DUMP_FILE
        self.seq = 0
        self._asked: list[int] = []
        self._stop = threading.Event()
        for sig in (signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, lambda signum, _frame: self._asked.append(signum))
        self._thread = threading.Thread(target=self._loop, name="memory-heapdump", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            while self._asked:
                self.dump(trim=self._asked.pop(0) == signal.SIGUSR2)

    def dump(self, *, trim: bool = False) -> dict[str, Any]:
        """Write one dump; ``trim``: then ``malloc_trim(0)`` and record the kernel's view
        after it."""
        self.seq += 1
        data = snapshot(self.memory, self.seq)
        if trim:
            malloc.trim()
            data["after_trim"] = proc_status()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)
        return data

    def stop(self) -> None:
        """Stop the thread; the signals go back to their defaults."""
        self._stop.set()
        self._thread.join(timeout=5)
        for sig in (signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_DFL)


def install(memory: Memory) -> HeapDumper | None:
    """A :class:`HeapDumper` when ``EMILY_MEMORY_DIAG`` is set (tracemalloc started first
    when ``EMILY_MEMORY_TRACEMALLOC`` is), else ``None``: nothing is changed."""
    if os.environ.get(DIAG_ENV, "") in ("", "0"):
        return None
    frames = os.environ.get(TRACE_ENV, "")
    if frames not in ("", "0"):
        if not frames.isdigit():
            raise ValueError(f"{TRACE_ENV} is a number of frames (1 or more), not {frames!r}")
        tracemalloc.start(int(frames))
    log.warning(
        "memory diagnostics on: SIGUSR1 (SIGUSR2: and trim) writes %s", memory.cfg.root / DUMP_FILE
    )
    return HeapDumper(memory)
