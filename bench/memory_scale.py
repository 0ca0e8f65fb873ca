"""Recall through the memory service as the store grows: latency, rate and memory per size.

For each size in ``--sizes`` (default 10k and 100k episodes), in a fresh database of the
embedded Postgres (pgserver + pgvector, ``shared_buffers = 1GB``, data in
``bench/out/pg-scale``):

1. **ingest**: structured random unit vectors (the two-level topic mixture of
   ``memory_common``; no MiniLM, so the figure is the store's, not the model's) loaded
   with the service's COPY path (``PgStore.insert``, 10,000 rows a batch), then
   Postgres' HNSW index built (m=16, ef_construction=64), each timed;
2. ``emily serve memory`` started on that database in its own process, with a fresh
   state dir and background consolidation off (the rows are not statements): the time
   until it serves and until its in-process index is ready (built from Postgres at
   start-up);
3. ``--queries`` recalls by vector (k=10, fresh draws from the same mixture) over
   loopback Zenoh, one at a time: p50/p99 of the round trip; then ``--clients`` client
   threads each with one recall in flight: recalls/s (requests encoded before the
   clock starts, replies decoded after it stops);
4. memory: the service's RSS after the queries (and its growth per episode over the
   previous size), Postgres' ``episodes`` table with its indexes per episode.

The smallest size is the same-run baseline: every latency is also given as a ratio to
it. ``--plot`` writes a log-log plot of p50 and p99 against the size.

    .venv/bin/python bench/memory_scale.py [--sizes 10000,100000] [--queries 400]
        [--clients 8] [--plot]
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import numpy.typing as npt
import psycopg
import zenoh
from cognition_common import bus_env, process, raw_call, serve_cmd
from common import OUT, free_port, load, load_line, percentile, pyplot, rss_kib, save_plot, table
from memory_common import T0, Mixture, embedded_postgres, fresh_db

from emily.bus import BusConfig, Keys, open_session
from emily.bus.endpoints import RECALL, STATS
from emily.bus.messages import decode, encode
from emily.bus.schemas.memory import RecallReply, RecallRequest, StatsReply, StatsRequest
from emily.memory.config import MemoryConfig
from emily.memory.record import Record
from emily.memory.store import PgStore

K = 10
CHUNK = 10_000


@dataclass
class Point:
    """The figures of one size (ms, s, bytes)."""

    n: int
    copy_s: float
    pg_index_s: float
    ready_s: float
    p50_ms: float
    p99_ms: float
    per_s: float
    rss_mib: float
    pg_bytes_per_episode: float
    load: str


def records(vecs: npt.NDArray[np.float32], offset: int, rng: np.random.Generator) -> list[Record]:
    """Records over ``vecs`` numbered from ``offset``: one a minute from 2024-01-01."""
    return [
        Record(
            id=uuid.UUID(bytes=rng.bytes(16), version=4),
            ts=T0 + timedelta(minutes=offset + i),
            text=f"synthetic episode {offset + i}",
            embedding=v,
        )
        for i, v in enumerate(vecs)
    ]


def ingest(dsn: str, n: int, cfg: MemoryConfig) -> tuple[float, float]:
    """Load ``n`` episodes by COPY, then build the HNSW index; returns both times (s)."""
    store = PgStore(dsn, cfg)
    with store.connection() as conn:
        conn.execute(f"DROP INDEX IF EXISTS {store.index_name}")  # built once, after the load
    mix, rng, copy_s = Mixture(), np.random.default_rng(n), 0.0
    for i in range(0, n, CHUNK):
        vecs, _ = mix.draw(min(CHUNK, n - i), seed=1000 + i)
        batch = records(vecs, i, rng)
        t = time.perf_counter()
        store.insert(batch)
        copy_s += time.perf_counter() - t
    t = time.perf_counter()
    store.ensure_index()
    index_s = time.perf_counter() - t
    with store.connection() as conn:
        conn.execute("VACUUM ANALYZE episodes")
    if store.count() != n:
        raise SystemExit(f"Postgres holds {store.count()} episodes after loading {n}")
    store.close()
    return copy_s, index_s


def pg_bytes(dsn: str) -> int:
    """Bytes of the ``episodes`` table with its TOAST and every index."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT pg_total_relation_size('episodes')").fetchone()
    return int(row[0]) if row else 0


def rate(session: zenoh.Session, key: str, payloads: list[bytes], clients: int) -> float:
    """Recalls/s with ``clients`` threads, each keeping one request in flight."""
    got: list[bytes] = []
    lock = threading.Lock()

    def work(part: list[bytes]) -> None:
        mine = [raw_call(session, key, p) for p in part]
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=work, args=(payloads[c::clients],)) for c in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    took = time.perf_counter() - t
    for raw in got:  # validated after the clock stopped
        decode(RecallReply, raw)
    return len(got) / took


def measure(n: int, dsn: str, args: argparse.Namespace) -> Point:
    """Ingest ``n`` episodes, serve them, time the recalls (see the module docstring)."""
    copy_s, index_s = ingest(dsn, n, MemoryConfig())
    print(f"{n:,}: COPY {copy_s:.1f} s, HNSW index {index_s:.1f} s", flush=True)
    state = OUT / "state-scale"
    shutil.rmtree(state, ignore_errors=True)
    endpoint, node = f"tcp/127.0.0.1:{free_port()}", "scale"
    env = bus_env(
        endpoint,
        node,
        state,
        EMILY_MEMORY__DSN=dsn,
        EMILY_MEMORY__METRICS_PORT="0",
        EMILY_MEMORY__HTTP_PORT=str(free_port()),
        EMILY_MEMORY__CONSOLIDATE_INTERVAL_S="0",  # no background passes over the synthetic rows
    )
    session = open_session(BusConfig(node=node, listen=(), connect=(endpoint,)))
    keys = Keys(node)
    key = RECALL.key(keys)
    queries, _ = Mixture().draw(args.queries, seed=99)
    payloads = [encode(RecallRequest(vector=q.tolist(), k=K)) for q in queries]
    try:
        t = time.perf_counter()
        with process(serve_cmd("memory"), env, session, key, wait_s=3600) as proc:
            while not decode(
                StatsReply, raw_call(session, STATS.key(keys), encode(StatsRequest()))
            ).index.index_ready:
                time.sleep(0.5)
            ready_s = time.perf_counter() - t
            for p in payloads[:50]:  # warm-up
                raw_call(session, key, p)
            ms = []
            for p in payloads:
                t = time.perf_counter()
                raw = raw_call(session, key, p)
                ms.append((time.perf_counter() - t) * 1e3)
                if len(decode(RecallReply, raw).hits) != K:
                    raise SystemExit(f"a recall at {n:,} returned fewer than {K} hits")
            per_s = rate(session, key, payloads, args.clients)
            rss = rss_kib(proc.pid) / 1024
    finally:
        session.close()  # type: ignore[no-untyped-call]
    return Point(
        n,
        copy_s,
        index_s,
        ready_s,
        percentile(ms, 50),
        percentile(ms, 99),
        per_s,
        rss,
        pg_bytes(dsn) / n,
        load(),
    )


def report(points: list[Point]) -> None:
    """The table of every size, with ratios to the smallest."""
    base = points[0]
    rows = []
    for i, p in enumerate(points):
        grow = (
            f"{(p.rss_mib - points[i - 1].rss_mib) * 2**20 / (p.n - points[i - 1].n):,.0f}"
            if i
            else "-"
        )
        rows.append(
            (
                f"{p.n:,}",
                f"{p.n / p.copy_s:,.0f}",
                f"{p.pg_index_s:.1f}",
                f"{p.ready_s:.1f}",
                f"{p.p50_ms:.2f}",
                f"{p.p99_ms:.2f}",
                f"{p.p50_ms / base.p50_ms:.2f}x",
                f"{p.per_s:,.0f}",
                f"{p.rss_mib:,.0f}",
                grow,
                f"{p.pg_bytes_per_episode:,.0f}",
                p.load,
            )
        )
    head = (
        "episodes",
        "COPY rows/s",
        "pg index s",
        "service ready s",
        "p50 ms",
        "p99 ms",
        "p50 vs smallest",
        "recalls/s",
        "service RSS MiB",
        "RSS B/episode (marginal)",
        "Postgres B/episode",
        "load 1m",
    )
    print(table(head, rows))


def plot(points: list[Point]) -> None:
    """Log-log: recall latency (p50, p99) against the number of episodes."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ns = [p.n for p in points]
    ax.loglog(ns, [p.p50_ms for p in points], "o-", label="p50")
    ax.loglog(ns, [p.p99_ms for p in points], "s--", label="p99")
    ax.set_xlabel("episodes")
    ax.set_ylabel("recall round trip (ms)")
    ax.set_title("memory/recall over Zenoh, k=10, one client")
    ax.legend()
    save_plot(fig, "memory_scale.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated episode counts")
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--plot", action="store_true")
    args = ap.parse_args()
    try:
        sizes = sorted(int(s) for s in args.sizes.split(","))
    except ValueError:
        raise SystemExit(f"--sizes takes comma-separated integers, not {args.sizes!r}") from None
    if not sizes or sizes[0] < 100 or args.queries < 50 or args.clients < 1:
        raise SystemExit("sizes must be at least 100, --queries at least 50, --clients >= 1")
    print(load_line("at start"), flush=True)
    pg = embedded_postgres("pg-scale")
    points: list[Point] = []
    for n in sizes:
        points.append(measure(n, fresh_db(pg.dsn, "scale"), args))
    report(points)
    print(load_line("at end"))
    if args.plot:
        plot(points)


if __name__ == "__main__":
    main()
