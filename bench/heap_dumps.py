"""The memory service's heap dumps (:mod:`emily.memory.heapdump`), as the benchmarks that
attribute its resident memory read them: ask for one and wait for it, and the
components whose growth per episode they print.

The service writes a dump when it gets ``SIGUSR1`` (``SIGUSR2``: and then trims its heap
and adds the kernel's view after the trim), if it was started with
``EMILY_MEMORY_DIAG=1``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common import slope, table

Dump = dict[str, Any]


def _maps(kind: str) -> Callable[[Dump], int]:
    return lambda d: int(d.get("maps", {}).get(kind, {}).get("rss", 0))


#: Components whose growth per episode is printed: (label, how to read it from a dump).
COMPONENTS: tuple[tuple[str, Callable[[Dump], int]], ...] = (
    ("VmRSS after malloc_trim", lambda d: d["after_trim"]["VmRSS"]),
    ("RssAnon after malloc_trim", lambda d: d["after_trim"]["RssAnon"]),
    ("VmRSS", lambda d: d["proc"]["VmRSS"]),
    ("RssAnon", lambda d: d["proc"]["RssAnon"]),
    ("RssFile (L2 maps, libraries)", lambda d: d["proc"]["RssFile"]),
    ("glibc malloc in use", lambda d: d["malloc"].get("in_use", 0)),
    ("glibc malloc free, kept", lambda d: d["malloc"].get("free", 0)),
    ("anon maps: glibc main arena (brk)", _maps("brk")),
    ("anon maps: glibc's other arenas", _maps("glibc_arenas")),
    ("anon maps: Python's arenas", _maps("python_arenas")),
    ("anon maps: thread stacks", _maps("stacks")),
    ("anon maps: other (large blocks)", _maps("other")),
    ("Python heap (traced)", lambda d: d["python"].get("traced_bytes", 0)),
    ("index id map (arrays)", lambda d: d["structures"].get("id_map_bytes", 0)),
    ("hnswlib (layout estimate)", lambda d: d["structures"].get("hnsw_bytes", 0)),
    ("scope partitions' vectors", lambda d: d["structures"].get("part_vec_bytes", 0)),
)
#: The component the target is about: what the service keeps (its RSS after a trim).
KEPT = COMPONENTS[0][1]


def component(label: str) -> Callable[[Dump], int]:
    """How to read the component ``label`` of :data:`COMPONENTS` from a dump."""
    return dict(COMPONENTS)[label]


def dump(pid: int, path: Path, seq: int, sig: int = signal.SIGUSR2, wait_s: float = 300) -> Dump:
    """Ask the service ``pid`` for heap dump number ``seq`` (written to ``path``) and read
    it; ``SystemExit`` if none comes within ``wait_s``."""
    os.kill(pid, sig)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            data: Dump = json.loads(path.read_text())
            if data["seq"] >= seq:
                return data
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"the memory service wrote no heap dump {seq} to {path} within {wait_s:.0f} s")


def growth(
    episodes: Sequence[int], dumps: Sequence[Dump], read: Callable[[Dump], int]
) -> tuple[float, float]:
    """Slope of one component against ``episodes`` over every dump and over the second
    half of them (nan where too few)."""
    ys = [float(read(d)) for d in dumps]
    half = len(dumps) // 2
    return slope(episodes, ys), slope(episodes[half:], ys[half:])


def component_rows(
    episodes: Sequence[int], dumps: Sequence[Dump], own: float
) -> list[tuple[str, str, str, str]]:
    """One row per component of :data:`COMPONENTS`: its label, growth per episode over
    every dump and over the second half, and the second half's ratio to ``own`` (the
    index alone's bytes per episode)."""
    rows = []
    for label, read in COMPONENTS:
        whole, half = growth(episodes, dumps, read)
        # z: a flat part's slope may come out a hair below zero, which is still "0"
        rows.append((label, f"{whole:z,.0f}", f"{half:z,.0f}", f"{half / own:z.2f}x"))
    return rows


def _mib(b: float) -> str:
    return f"{b / 2**20:,.1f}"


def checkpoint_table(episodes: Sequence[int], dumps: Sequence[Dump]) -> str:
    """One row per dump: the kernel's and glibc's figures, the traced Python heap, the
    index's layout estimate and what the tiers, the access statistics and the embedder
    held, at ``episodes``."""
    rows = []
    for n, d in zip(episodes, dumps, strict=True):
        p, m, s = d["proc"], d["malloc"], d["structures"]
        rows.append(
            (
                f"{n:,}",
                _mib(p["VmRSS"]),
                _mib(p["RssAnon"]),
                _mib(p["RssFile"]),
                _mib(m.get("in_use", 0)),
                _mib(m.get("free", 0)),
                m.get("arenas", "-"),
                p.get("Threads", "-"),
                _mib(d["python"].get("traced_bytes", 0)),
                _mib(s.get("hnsw_bytes", 0)),
                f"{s['l0']}/{s['l1']}/{s['l2']}",
                f"{s['access_stats']:,}",
                s.get("embed_shapes", "-"),
            )
        )
    head = (
        "episodes",
        "RSS MiB",
        "anon MiB",
        "file MiB",
        "malloc used MiB",
        "malloc free MiB",
        "arenas",
        "threads",
        "Py traced MiB",
        "hnsw MiB",
        "L0/L1/L2",
        "access stats",
        "embedder shapes",
    )
    return table(head, rows)
