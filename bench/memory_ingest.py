"""Memory ingest: binary COPY vs ``executemany``, and ingest with MiniLM embedding.

All in one run against the embedded Postgres (pgserver, data in ``bench/out/``):

1. ``PgStore.insert``, the service's ingest path (binary COPY straight into ``episodes``;
   only a retried batch goes through a staging table and ``INSERT ... ON CONFLICT``):
   rows/s;
2. plain binary COPY straight into ``episodes`` (no dedup): rows/s;
3. the baseline: ``executemany`` of single-row ``INSERT``s: rows/s;
4. text -> MiniLM embedding -> COPY, batched: texts/s (the model is the bottleneck).

Usage::

    .venv/bin/python bench/memory_ingest.py [--rows 20000] [--texts 512] [--plot]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory_common import OUT, Mixture, embedded_postgres, load, make_records, table

from emily.memory.config import MemoryConfig
from emily.memory.embed import Embedder
from emily.memory.ids import uuid7
from emily.memory.record import Record
from emily.memory.store import COLUMNS, TYPES, PgStore, _row


def fresh_db(dsn0: str, name: str) -> str:
    with psycopg.connect(dsn0, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, query = dsn0.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}?{query}"


def timed(store: PgStore, fn: object, records: list[Record]) -> float:
    with store.connection() as conn:
        conn.execute("TRUNCATE episodes")
    start = time.perf_counter()
    fn(records)  # type: ignore[operator]
    took = time.perf_counter() - start
    assert store.count() == len(records), "not every row arrived"
    return len(records) / took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--texts", type=int, default=512)
    ap.add_argument("--plot", action="store_true")
    args = ap.parse_args()

    print(f"load average at start (1, 5, 15 min): {os.getloadavg()}", flush=True)
    pg = embedded_postgres("pg-ingest")
    # no HNSW index during ingest (it is built after a bulk load); m is irrelevant here
    store = PgStore(fresh_db(pg.dsn, "ingest"), MemoryConfig(pool_max=2))
    with store.connection() as conn:
        conn.execute(f"DROP INDEX IF EXISTS {store.index_name}")
    vecs, _ = Mixture().draw(args.rows, seed=3)
    records = make_records(vecs)
    cols = ", ".join(COLUMNS)

    def write_row_copy(recs: list[Record]) -> None:
        with (
            store.connection() as conn,
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(f"COPY episodes ({cols}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types(list(TYPES))
            for r in recs:
                copy.write_row(_row(r))

    def executemany(recs: list[Record]) -> None:
        marks = ", ".join(["%s"] * len(COLUMNS))
        with store.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO episodes ({cols}) VALUES ({marks})", [_row(r) for r in recs]
            )

    many_rows = records[: max(1000, args.rows // 10)]  # the slow baseline on fewer rows

    def measured(name: str, fn: object, recs: list[Record]) -> tuple[str, float, int, str]:
        return name, timed(store, fn, recs), len(recs), load()

    results = [
        measured("PgStore.insert (COPY; ON CONFLICT on retry)", store.insert, records),
        measured("binary COPY into episodes", write_row_copy, records),
        measured("executemany INSERT (baseline)", executemany, many_rows),
    ]
    # the server's share: the same plain COPY without the ts and context indexes
    with store.connection() as conn:
        conn.execute("DROP INDEX episodes_ts_idx")
        conn.execute("DROP INDEX episodes_context_idx")
    results.insert(2, measured("binary COPY, primary key only", write_row_copy, records))
    # the service's steady state: every row also goes into the HNSW graph
    store.ensure_index()
    few = records[: max(500, args.rows // 25)]
    results.insert(-1, measured("PgStore.insert, HNSW index maintained", store.insert, few))
    base = results[-1][1]
    rows = [(name, n, f"{rate:,.0f}", f"{rate / base:.1f}x", ld) for name, rate, n, ld in results]

    embedder = Embedder(device="cpu")
    texts = [
        f"Note {i}: I talked with person {i % 37} about topic {i % 11} at the cafe"
        for i in range(args.texts)
    ]
    embedder.embed(texts[:32])  # warm-up
    with store.connection() as conn:
        conn.execute("TRUNCATE episodes")
    start = time.perf_counter()
    for i in range(0, len(texts), 128):
        chunk = texts[i : i + 128]
        emb = embedder.embed(chunk)
        store.insert(
            [
                Record(id=uuid7(), ts=records[0].ts, text=t, embedding=emb[j])
                for j, t in enumerate(chunk)
            ]
        )
    rate = len(texts) / (time.perf_counter() - start)
    rows.append(
        (
            "MiniLM embed + PgStore.insert, batch 128",
            len(texts),
            f"{rate:,.0f}",
            f"{rate / base:.2f}x",
            load(),
        )
    )
    print(table(rows, ("method", "rows", "rows/s", "vs executemany", "load 1m")))
    print(f"load average at end (1, 5, 15 min): {os.getloadavg()}")
    print(
        f"\nCOPY / executemany = {results[0][1] / base:.1f}x (service path), "
        f"{results[1][1] / base:.1f}x (plain COPY); MiniLM-bound ingest {rate:,.0f} texts/s"
    )
    print("(executemany is psycopg 3's, which pipelines the INSERTs: a strong baseline)")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3))
        ax.barh([r[0] for r in rows], [float(r[2].replace(",", "")) for r in rows])
        ax.set_xscale("log")
        ax.set_xlabel("rows/s (log)")
        fig.tight_layout()
        OUT.mkdir(exist_ok=True)
        fig.savefig(OUT / "memory_ingest.png", dpi=120)
        print(f"plot: {OUT / 'memory_ingest.png'}")
    store.close()


if __name__ == "__main__":
    main()
