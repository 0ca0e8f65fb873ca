"""Memory tiers: admission policy hit ratios on Zipf traces, and recall latency per tier.

1. Hit ratio on Zipf(0.99) traces over ``--keys`` keys with the cache at 1% of them:
   W-TinyLFU (L1's policy), S3-FIFO (a candidate, implemented here) and plain LRU (the
   baseline), on the same traces.
2. ``Memory.recall`` latency (p50/p99, ms) on an embedded Postgres with ``--episodes``
   episodes: answered from L0 (``scope="hot"``, exact tensor search), with bodies from
   L1 (``scope="all"``, HNSW in Postgres, bodies cached), and cold (bodies from L3).

Usage::

    .venv/bin/python bench/memory_tiers.py [--keys 100000] [--episodes 20000] [--plot]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import OrderedDict, deque
from pathlib import Path

import numpy as np
from common import OUT, load_line, percentile, pyplot, save_plot, table
from memory_common import Mixture, embedded_postgres, fresh_db, make_records

from emily.bus.schemas.memory import RecallRequest
from emily.memory.config import MemoryConfig
from emily.memory.core import Memory
from emily.memory.l1 import WTinyLFU
from emily.memory.store import PgStore


def zipf_trace(keys: int, length: int, s: float, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, keys + 1) ** s
    perm = rng.permutation(keys)  # popularity is not key order
    return perm[rng.choice(keys, size=length, p=weights / weights.sum())].tolist()


def lru(trace: list[int], cap: int) -> float:
    cache: OrderedDict[int, None] = OrderedDict()
    hits = 0
    for k in trace:
        if k in cache:
            hits += 1
            cache.move_to_end(k)
        else:
            cache[k] = None
            if len(cache) > cap:
                cache.popitem(last=False)
    return hits / len(trace)


def tinylfu(trace: list[int], cap: int) -> float:
    cache: WTinyLFU[int] = WTinyLFU(cap)
    hits = 0
    for k in trace:
        hits += k in cache
        cache.access(k)
    return hits / len(trace)


def s3fifo(trace: list[int], cap: int) -> float:
    """S3-FIFO (Yang et al., SOSP 2023): small FIFO 10%, main FIFO, ghost FIFO."""
    small_cap = max(1, cap // 10)
    small: deque[int] = deque()
    main: deque[int] = deque()
    ghost: OrderedDict[int, None] = OrderedDict()
    freq: dict[int, int] = {}
    hits = 0

    def evict_main() -> None:
        while main:
            k = main.popleft()
            if freq[k] > 0:
                freq[k] -= 1
                main.append(k)
            else:
                del freq[k]
                return

    def evict_small() -> None:
        while small:
            k = small.popleft()
            if freq[k] > 1:
                main.append(k)
                if len(main) > cap - small_cap:
                    evict_main()
            else:
                del freq[k]
                ghost[k] = None
                if len(ghost) > cap:
                    ghost.popitem(last=False)
                return

    for k in trace:
        if k in freq:
            hits += 1
            freq[k] = min(freq[k] + 1, 3)
            continue
        if len(small) + len(main) >= cap:
            if len(small) >= small_cap or not main:
                evict_small()
            else:
                evict_main()
        freq[k] = 0
        if k in ghost:
            del ghost[k]
            main.append(k)
        else:
            small.append(k)
    return hits / len(trace)


def latency(memory: Memory, queries: np.ndarray, scope: str, k: int = 10) -> list[float]:
    out = []
    for q in queries:
        req = RecallRequest(vector=q.tolist(), k=k, scope=scope)  # type: ignore[arg-type]
        start = time.perf_counter()
        memory.recall(req)
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--length", type=int, default=1_000_000)
    ap.add_argument("--episodes", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--plot", action="store_true")
    args = ap.parse_args()
    print(load_line("at start"), flush=True)

    cap = args.keys // 100
    rows = []
    ratios = {}
    for seed in (1, 2):
        trace = zipf_trace(args.keys, args.length, 0.99, seed)
        r = {
            "LRU": lru(trace, cap),
            "W-TinyLFU": tinylfu(trace, cap),
            "S3-FIFO": s3fifo(trace, cap),
        }
        ratios[seed] = r
        for name, hr in r.items():
            rows.append((seed, name, f"{hr:.4f}", f"{(hr - r['LRU']) * 100:+.1f} pts"))
    print(f"Zipf(0.99), {args.keys:,} keys, {args.length:,} accesses, cache {cap:,} (1%)")
    print(table(("trace", "policy", "hit ratio", "vs LRU"), rows))
    print(load_line("now"))

    pg = embedded_postgres("pg-tiers")
    cfg = MemoryConfig(
        state=Path(tempfile.mkdtemp(dir=OUT)) / "memory",
        l0_capacity=256,
        l1_capacity=2048,
        l2_capacity=8192,
        ef_search=40,
    )
    store = PgStore(fresh_db(pg.dsn, "tiers"), cfg)
    vecs, _ = Mixture().draw(args.episodes, seed=5)
    recs = make_records(vecs)
    for i in range(0, len(recs), 5000):
        store.insert(recs[i : i + 5000])
    memory = Memory(cfg, store, None)
    if memory.indexer is not None:  # measure the default set-up: the in-process index serving
        memory.indexer.ready.wait()
    hot = vecs[:64]
    cold = Mixture().draw(args.queries, seed=9)[0]
    cold_ms = latency(memory, cold, "all")  # first sight of these episodes: bodies from L3
    for _ in range(6):  # repeated recalls promote the hot set: L3 -> L2 -> L1 -> L0
        latency(memory, hot, "all")
    sizes = memory.tiers.sizes()
    reps = max(1, args.queries // len(hot))
    l1_ms = latency(memory, np.concatenate([hot] * reps), "all")
    l0_ms = latency(memory, np.concatenate([hot] * reps), "hot")
    lat_rows = []
    base = percentile(cold_ms, 50)
    for name, xs in (
        ("L0 (scope=hot)", l0_ms),
        ("L1 bodies (scope=all)", l1_ms),
        ("L3 cold (scope=all)", cold_ms),
    ):
        lat_rows.append(
            (
                name,
                len(xs),
                f"{percentile(xs, 50):.2f}",
                f"{percentile(xs, 99):.2f}",
                f"{base / percentile(xs, 50):.1f}x",
                f"{1000 / np.mean(xs):,.0f}",
            )
        )
    print(f"\nrecall latency, {args.episodes:,} episodes, k=10, tiers held {sizes}")
    print(table(("served from", "n", "p50 ms", "p99 ms", "speed-up vs L3", "recalls/s"), lat_rows))
    print(load_line("now"))
    best = {s: r["W-TinyLFU"] - r["LRU"] for s, r in ratios.items()}
    print(
        f"\nW-TinyLFU - LRU: {', '.join(f'{v * 100:+.1f} pts' for v in best.values())}; "
        f"L0 p50 speed-up over L3: {base / percentile(l0_ms, 50):.1f}x"
    )
    if args.plot:
        fig, (a, b) = pyplot().subplots(1, 2, figsize=(10, 3.5))
        names = list(ratios[1])
        a.bar(names, [ratios[1][n] for n in names])
        a.set_ylabel("hit ratio (Zipf 0.99, 1% cache)")
        b.boxplot([l0_ms, l1_ms, cold_ms], tick_labels=["L0", "L1", "L3"], showfliers=False)
        b.set_ylabel("recall latency, ms")
        save_plot(fig, "memory_tiers.png")
    memory.close()


if __name__ == "__main__":
    main()
