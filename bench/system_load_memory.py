"""What ``bench/system_load.py`` measures of memory: every process's resident set
each second, what the memory service keeps after its heap trims, and their growth per
stored episode against the index alone.

Memory's resident set also holds the heap freed since its last trim (every
``heap_trim_s``, 30 s by default), so it swings with the load. What it keeps is its
resident set right after a trim (``emily_memory_resident_after_trim_bytes``):
:class:`Sampler` takes one row per new trim under load, and :func:`quiet_kept` one
after the load has paused and the stack has settled, when no request's working memory
is held. :func:`kept_growth` sets either series' slope against the index alone grown
to the same counts in a process of its own (``bench/index_rss.py``), with the slope of
their difference and its standard error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import hnswlib
import numpy as np
from common import pss_tree_kib, rss_kib, scrape, slope, slope_se
from index_rss import measure as index_alone

from emily.memory.config import MemoryConfig

#: From memory's metrics: heap trims so far, resident bytes after the last, the
#: embedder's input shapes, and the slots its index has used (live and removed).
Kept = tuple[int, int, int, int]
#: One kept size: (s, episodes, resident bytes after a trim, shapes, index slots).
KeptRow = tuple[float, int, int, int, int]


class Sampler:
    """Samples every process's memory (KiB) and memory's episode count each ``every_s``,
    and, from ``kept()`` (:data:`Kept`), one :data:`KeptRow` in ``kept_rows`` per new
    trim."""

    def __init__(
        self,
        pids: dict[str, int],
        episodes: Callable[[], int],
        kept: Callable[[], Kept] | None = None,
        every_s: float = 1.0,
    ):
        self.pids, self.episodes, self.kept, self.every_s = pids, episodes, kept, every_s
        self.rows: list[tuple[float, int, dict[str, int]]] = []
        self.kept_rows: list[KeptRow] = []
        self._trims = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self.t0 = time.perf_counter()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every_s)

    def sample(self) -> tuple[float, int, dict[str, int]]:
        """One row: (s since start, episodes in memory, KiB per process)."""
        kib = {
            name: pss_tree_kib(pid) if name == "postgres" else rss_kib(pid)
            for name, pid in self.pids.items()
        }
        try:
            n = self.episodes()
        except Exception:  # memory busy past the stats deadline: skip the count
            n = self.rows[-1][1] if self.rows else 0
        row = (time.perf_counter() - self.t0, n, kib)
        self.rows.append(row)
        if self.kept is not None:
            try:
                trims, kept, shapes, slots = self.kept()
            except OSError:  # metrics busy: the next sample reads it
                return row
            if trims > self._trims >= 0 and kept > 0:
                self.kept_rows.append((row[0], n, kept, shapes, slots))
            self._trims = max(self._trims, trims)
        return row

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def index_bytes_per_episode(cfg: MemoryConfig, n: int = 4000) -> float:
    """Bytes per element of an hnswlib index with memory's parameters (its serialised
    size over ``n`` random unit vectors), plus the 16-byte id the service keeps per label."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    idx = hnswlib.Index("cosine", 384)
    idx.init_index(max_elements=n, M=cfg.hnsw_m, ef_construction=cfg.hnsw_ef_construction)
    idx.add_items(x)
    return float(idx.index_file_size()) / n + 16


def memory_kept(metrics_url: str) -> Kept:
    """Memory's :data:`Kept` figures, from its ``/metrics``."""
    names = (
        "emily_memory_heap_trims_total",
        "emily_memory_resident_after_trim_bytes",
        "emily_memory_embed_shapes",
        "emily_memory_index_slots",
    )
    got = scrape(metrics_url, timeout_s=5)
    if any(not got.get(n) for n in names):
        raise RuntimeError(f"{metrics_url} lacks one of {sorted(names)}")
    trims, kept, shapes, slots = (int(got[n][0][1]) for n in names)
    return trims, kept, shapes, slots


def quiet_kept(
    settled: Callable[[], int],
    kept: Callable[[], Kept],
    limit_s: float = 90.0,
    poll_s: float = 0.5,
) -> tuple[int, int, int, int]:
    """Memory's episodes, kept bytes, embedder input shapes and index slots from its
    first heap trim after the stack has settled. ``settled()`` waits until it has (no
    request in flight, both outboxes empty) and returns memory's episode count;
    ``kept()`` reads :data:`Kept` from memory's metrics. Raises ``RuntimeError`` when
    no trim comes within ``limit_s``."""
    n = settled()
    before = kept()[0]
    deadline = time.monotonic() + limit_s
    while (now := kept())[0] <= before:
        if time.monotonic() > deadline:
            raise RuntimeError(f"memory made no heap trim within {limit_s:.0f} s")
        time.sleep(poll_s)
    return n, now[1], now[2], now[3]


@dataclass(frozen=True)
class KeptGrowth:
    """Memory's kept bytes per stored episode against the index alone's.

    Attributes
    ----------
    whole, half : memory's slope over every row and over their second half.
    alone_whole, alone : the index alone's, grown to the same slots, over the same rows.
    excess, excess_half : the slope of memory's kept size less the index alone's at the
        same rows, and its standard error, ``(B/episode, B/episode)``: what memory
        keeps per episode beyond its index, and how far the rows' scatter leaves it
        uncertain.
    alone_bytes : the index alone's resident bytes at each row (empty without it).
    """

    whole: float
    half: float
    alone_whole: float
    alone: float
    excess: tuple[float, float]
    excess_half: tuple[float, float]
    alone_bytes: tuple[int, ...] = ()


def kept_growth(rows: list[KeptRow]) -> KeptGrowth:
    """Memory's kept bytes per stored episode from ``rows`` against what the index alone
    keeps: the index grown in a process of its own to the slots memory's index had used
    at each row (a removed episode keeps its slot), its resident size's slope over the
    rows' episode counts. ``nan`` with fewer than 4 rows, a slope over fewer than 2
    distinct counts, or (the index alone's and the excess) fewer than 4 distinct slot
    counts."""
    nan = float("nan")
    if len(rows) < 4:
        return KeptGrowth(nan, nan, nan, nan, (nan, nan), (nan, nan))
    n = np.array([r[1] for r in rows], float)
    b = np.array([r[2] for r in rows], float)
    h = len(rows) // 2
    slots = [max(1, r[4]) for r in rows]
    whole, half = slope(n, b, 2), slope(n[h:], b[h:], 2)
    if len(counts := sorted(set(slots))) < 4:
        return KeptGrowth(whole, half, nan, nan, (nan, nan), (nan, nan))
    grown = {g["count"]: g["RssAnon"] for g in index_alone("index", counts)}
    a = np.array([grown[s] for s in slots], float)
    return KeptGrowth(
        whole,
        half,
        slope(n, a, 2),
        slope(n[h:], a[h:], 2),
        slope_se(n, b - a),
        slope_se(n[h:], b[h:] - a[h:]),
        tuple(int(v) for v in a),
    )


def growth(rows: list[tuple[float, int, dict[str, int]]], name: str) -> tuple[float, float]:
    """Bytes per stored episode of process ``name``: least-squares slope of its memory
    against memory's episode count over all ``rows``, and over their second half."""

    def of(part: list[tuple[float, int, dict[str, int]]]) -> float:
        return slope([r[1] for r in part], [r[2][name] * 1024 for r in part])

    return of(rows), of(rows[len(rows) // 2 :])


def swings(
    rows: list[tuple[float, int, dict[str, int]]], name: str, window_s: float = 30.0
) -> list[tuple[float, int, float, float]]:
    """Per whole ``window_s`` of samples (memory gives freed heap back every ``heap_trim_s``): its
    start (s), the episodes at its least sample, and process ``name``'s least and
    greatest size (MiB)."""
    out = []
    last = int(rows[-1][0] // window_s) if rows else 0
    for w in range(last):
        part = [r for r in rows if w * window_s <= r[0] < (w + 1) * window_s]
        if part:
            low = min(part, key=lambda r: r[2][name])
            high = max(r[2][name] for r in part)
            out.append((w * window_s, low[1], low[2][name] / 1024, high / 1024))
    return out
