"""What the memory service's in-process index alone keeps resident per element: the
same-run baseline of ``bench/memory_rss.py`` and ``bench/system_load.py``.

In a process of its own, so that nothing else grows beside it, with the service's
malloc arena bound (2), it grows one of:

- ``hnswlib``: a bare hnswlib graph with memory's parameters (inner product, 384
  dimensions, ``--m``, ``--ef-construction``), from 1,024 slots, doubling when full, as
  the service grows its graph;
- ``index``: memory's own :class:`emily.memory.index.AnnIndex`, the same graph with its
  id map and its scope table, which the service keeps for every episode (and, up to
  4,096 elements, the one user's vectors again, for exact search);

adding random unit vectors in batches of 8 under UUIDv7 ids, each batch followed by 8
searches for k=5 at once (searches on 8 threads at a time keep 8 of hnswlib's visited
lists, each 2 bytes a slot, as the service's bus workers do). At each count of
``--counts`` it calls ``malloc_trim(0)`` and prints one JSON line: the count, the
capacity, ``VmRSS``, ``RssAnon`` and its anonymous maps by kind (glibc's arenas,
Python's, large blocks), as the memory service's heap dumps name them, and the large
blocks one by one with the index's arrays that lie in them. The growth per
element is the least-squares slope of ``RssAnon`` over the second half of the counts, as
the two benchmarks compute theirs.

    .venv/bin/python bench/index_rss.py [--kind index] [--counts 2000,4000,...,14000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("hnswlib", "index")
#: Vectors per add, and searches (on as many threads) after each.
BATCH = 8


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def grow(kind: str, counts: list[int], m: int, ef_construction: int) -> list[dict[str, int]]:
    """In this process: grow a ``kind`` index to each of ``counts`` in turn; one row per
    count (``count``, ``capacity``, ``VmRSS``, ``RssAnon`` and the anonymous maps by kind,
    ``maps_<kind>``, :func:`emily.memory.heapdump.anon_maps`, in bytes, after a trim)."""
    import hnswlib

    from emily.ids import uuid7
    from emily.memory import malloc
    from emily.memory.heapdump import array_owners, index_arrays, maps_and_blocks
    from emily.memory.index import AnnIndex, HnswParams
    from emily.memory.malloc import proc_status

    malloc.set_arena_max(2)
    rng = np.random.default_rng(0)
    pool = ThreadPoolExecutor(BATCH)
    if kind == "index":
        ann = AnnIndex(HnswParams(m=m, ef_construction=ef_construction))

        def add(vecs: np.ndarray, first: int) -> None:
            ann.add([uuid7() for _ in range(len(vecs))], vecs)

        def search(q: np.ndarray) -> None:
            list(pool.map(lambda row: ann.search(row, 5), q))

        def capacity() -> int:
            return ann.capacity

        def owners() -> dict[str, tuple[int, int]]:
            return array_owners(index_arrays(ann))
    elif kind == "hnswlib":
        graph = hnswlib.Index(space="ip", dim=384)
        graph.init_index(max_elements=1024, ef_construction=ef_construction, M=m)

        def add(vecs: np.ndarray, first: int) -> None:
            need = first + len(vecs)
            if need > graph.get_max_elements():
                graph.resize_index(max(need, 2 * graph.get_max_elements()))
            graph.add_items(vecs, np.arange(first, need))

        def search(q: np.ndarray) -> None:
            graph.knn_query(q, k=5, num_threads=BATCH)

        def capacity() -> int:
            return int(graph.get_max_elements())

        def owners() -> dict[str, tuple[int, int]]:
            return {}
    else:
        raise ValueError(f"an index kind is one of {KINDS}, not {kind!r}")
    rows, n = [], 0
    for target in counts:
        while n < target:
            k = min(BATCH, target - n)
            add(_unit(rng, k), n)
            n += k
            search(_unit(rng, BATCH))
        malloc.trim()
        p = proc_status()
        by_kind, blocks = maps_and_blocks(owners())
        maps = {f"maps_{k}": v["rss"] for k, v in by_kind.items()}
        kernel = {k: p[k] for k in ("VmRSS", "RssAnon")}
        rows.append({"count": n, "capacity": capacity(), **kernel, **maps, "large_blocks": blocks})
    pool.shutdown()
    return rows


def measure(
    kind: str, counts: list[int], m: int = 16, ef_construction: int = 64
) -> list[dict[str, Any]]:
    """:func:`grow` in a fresh Python process (this script), its rows."""
    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--kind",
            kind,
            "--counts",
            ",".join(map(str, counts)),
            "--m",
            str(m),
            "--ef-construction",
            str(ef_construction),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def per_element(rows: list[dict[str, Any]], key: str = "RssAnon") -> float:
    """Bytes per element: the slope of ``key`` over the second half of ``rows``."""
    half = rows[len(rows) // 2 :]
    if len(half) < 2:
        raise ValueError("a slope needs at least 4 counts (2 in the second half)")
    x = np.array([r["count"] for r in half], float)
    return float(np.polyfit(x, np.array([r[key] for r in half], float), 1)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=KINDS, default="index")
    ap.add_argument("--counts", default=",".join(str(2000 * i) for i in range(1, 8)))
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=64)
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    if len(counts) < 4 or counts != sorted(counts) or counts[0] < 1:
        raise SystemExit("--counts are 4 or more increasing positive numbers")
    rows = grow(args.kind, counts, args.m, args.ef_construction)
    for row in rows:
        print(json.dumps(row), flush=True)
    print(f"# {args.kind}: {per_element(rows):,.0f} B per element resident, 2nd half")


if __name__ == "__main__":
    main()
