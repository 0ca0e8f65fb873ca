"""Memory partitioning: does time-partitioning the episodes table help pgvector search?

pgvector's HNSW index is per partition, and the planner handles a partitioned
``ORDER BY embedding <=> q LIMIT k`` with a Merge Append over one index scan per
partition, each returning its own k; a time filter prunes partitions instead. Same
rows, same queries, same HNSW parameters, one run:

- ``plain``: the service's table (one HNSW index), time windows via iterative scans;
- ``monthly``: the same rows in a table ``PARTITION BY RANGE (ts)``, one partition
  per month, each with its own HNSW index.

Reported: recall@10 and recalls/s, unfiltered and with a one-month time window, and
the ratio partitioned / plain. The service adopts partitioning only if it wins.

Usage::

    .venv/bin/python bench/memory_partitioning.py [--n 30000] [--months 6] [--queries 200]
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

import numpy as np
from common import load_line, table
from memory_common import T0, Mixture, embedded_postgres, fresh_db, make_records

from emily.bus.schemas.memory import RecallFilters
from emily.memory.config import MemoryConfig
from emily.memory.store import PgStore

K = 10
MONTH = timedelta(days=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30_000)
    ap.add_argument("--months", type=int, default=6)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--ef", type=int, default=40)
    args = ap.parse_args()
    if args.months < 3:
        ap.error("--months must be at least 3: the one-month window is the third month")
    print(load_line("at start"), flush=True)

    pg = embedded_postgres("pg-partitioning")
    cfg = MemoryConfig(hnsw_m=16, hnsw_ef_construction=64, ef_search=args.ef)
    store = PgStore(fresh_db(pg.dsn, "partitioning"), cfg)
    vecs, _ = Mixture().draw(args.n, seed=21)
    span = args.months * MONTH
    recs = [
        r.__class__(**{**r.__dict__, "ts": T0 + span * (i / args.n)})
        for i, r in enumerate(make_records(vecs))
    ]
    with store.connection() as conn:
        conn.execute(f"DROP INDEX {store.index_name}")
    for i in range(0, len(recs), 10000):
        store.insert(recs[i : i + 10000])
    t = time.perf_counter()
    store.ensure_index()
    plain_build = time.perf_counter() - t
    with store.connection() as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute(
            "CREATE TABLE episodes_part (LIKE episodes INCLUDING DEFAULTS) PARTITION BY RANGE (ts)"
        )
        for m in range(args.months + 1):
            lo, hi = T0 + m * MONTH, T0 + (m + 1) * MONTH
            conn.execute(
                f"CREATE TABLE episodes_part_{m} PARTITION OF episodes_part "
                f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"
            )
        conn.execute("INSERT INTO episodes_part SELECT * FROM episodes")
        t = time.perf_counter()
        conn.execute(
            "CREATE INDEX ON episodes_part USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 64)"
        )
        part_build = time.perf_counter() - t
        conn.execute("ANALYZE episodes")
        conn.execute("ANALYZE episodes_part")

    queries, _ = Mixture().draw(args.queries, seed=22)
    ts = np.array([(r.ts - T0).total_seconds() for r in recs])
    ids = [r.id for r in recs]
    window = (T0 + 2 * MONTH, T0 + 3 * MONTH)
    in_window = np.flatnonzero(
        (ts >= (window[0] - T0).total_seconds()) & (ts < (window[1] - T0).total_seconds())
    )
    truth_all = np.argsort(-(queries @ vecs.T), axis=1)[:, :K]
    sims = queries @ vecs[in_window].T
    truth_win = in_window[np.argsort(-sims, axis=1)[:, :K]]

    def run(table_name: str, filtered: bool) -> tuple[float, float, float]:
        where = "WHERE ts >= %(lo)s AND ts < %(hi)s" if filtered else ""
        sql = (
            f"WITH c AS MATERIALIZED (SELECT id, embedding <=> %(q)s AS d FROM {table_name} "
            f"{where} ORDER BY embedding <=> %(q)s LIMIT {K}) SELECT id FROM c ORDER BY d"
        )
        got = []
        t = time.perf_counter()
        with store.connection() as conn:
            for q in queries:
                with conn.transaction():
                    conn.execute(f"SET LOCAL hnsw.ef_search = {args.ef}")
                    if filtered:
                        conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                    rows = conn.execute(sql, {"q": q, "lo": window[0], "hi": window[1]}).fetchall()
                got.append([r[0] for r in rows])
        rate = len(queries) / (time.perf_counter() - t)
        truth = truth_win if filtered else truth_all
        want = [{ids[j] for j in row} for row in truth]
        recall = float(np.mean([len(set(g) & w) / K for g, w in zip(got, want, strict=True)]))
        full = float(np.mean([len(g) == K for g in got]))
        return recall, rate, full

    rows = []
    results = {}
    for filtered in (False, True):
        for name in ("episodes", "episodes_part"):
            results[name, filtered] = run(name, filtered)
        base = results["episodes", filtered]
        for name, label in (
            ("episodes", "plain"),
            ("episodes_part", f"monthly ({args.months + 1})"),
        ):
            r, rate, full = results[name, filtered]
            rows.append(
                (
                    "1-month window" if filtered else "unfiltered",
                    label,
                    f"{r:.3f}",
                    f"{full:.0%}",
                    f"{rate:,.0f}",
                    f"{rate / base[1]:.2f}x",
                )
            )
    # the service's own filtered path (PgStore.search) on the plain table, for reference
    f = RecallFilters(since=window[0], until=window[1])
    t = time.perf_counter()
    for q in queries:
        store.search(q, K, f)
    svc_rate = len(queries) / (time.perf_counter() - t)
    print(
        f"{args.n:,} episodes over {args.months} months, {args.queries} queries, k={K}, "
        f"ef_search={args.ef}; HNSW build plain {plain_build:.1f} s, partitioned {part_build:.1f} s"
    )
    print(table(("query", "table", "recall@10", "full k", "recalls/s", "vs plain"), rows))
    print(load_line("now"))
    print(f"PgStore.search with the same window (plain table): {svc_rate:,.0f} recalls/s")
    unf = results["episodes_part", False][1] / results["episodes", False][1]
    win = results["episodes_part", True][1] / results["episodes", True][1]
    print(f"\npartitioned / plain recalls/s: unfiltered {unf:.2f}x, 1-month window {win:.2f}x")
    store.close()


if __name__ == "__main__":
    main()
