"""Memory ingest: binary COPY vs ``executemany``, and ingest with MiniLM embedding.

All in one run against the embedded Postgres (pgserver, data in ``bench/out/``), each
figure the median of ``--repeat`` runs, rows 1 (both), 2, 3 and 6 taken round-robin so
that they share the machine's load:

1. ``PgStore.insert``, the service's ingest path: binary COPY straight into ``episodes``,
   encoded with NumPy (``emily.memory.pgcopy``) and split over 2 pooled connections
   that commit together, each row logged as a ``store`` event: rows/s (the target row);
   the same with the event log's trigger off follows it (the log's share);
2. the same over 1 connection;
3. psycopg's own COPY encoder (``write_row``) over 1 connection, against NumPy's;
4. ``PgStore.insert`` without the ``ts`` and ``context`` indexes (the indexes' share);
5. ``PgStore.insert`` with the HNSW index maintained (the service's steady state);
6. the baseline: psycopg 3 ``executemany`` of the same single-row ``INSERT``;
7. text -> MiniLM embedding -> COPY, batched: texts/s (the model is the bottleneck).

For rows 1 to 3 it also prints where the CPU goes: this process's CPU time and the
Postgres server's (its processes' CPU time from ``/proc``), in µs per row.

Usage::

    .venv/bin/python bench/memory_ingest.py [--rows 50000] [--texts 512] [--repeat 3] [--plot]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from common import barh_plot, cell_number, load, load_line, table
from memory_common import Mixture, embedded_postgres, fresh_db, make_records

from emily.embed import Embedder
from emily.ids import uuid7
from emily.memory.config import MemoryConfig
from emily.memory.embedded import EmbeddedPostgres
from emily.memory.record import Record
from emily.memory.rows import COLUMNS, TYPES, to_row
from emily.memory.store import PgStore

Insert = Callable[[Sequence[Record]], object]


def server_cpu_s(pg: EmbeddedPostgres) -> float:
    """CPU seconds (user + system) of the Postgres server's processes so far (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        kids = Path(f"/proc/{pg.pid}/task/{pg.pid}/children").read_text().split()
    except OSError:
        return float("nan")
    total = 0.0
    for pid in [*kids, str(pg.pid)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


class Timer:
    """Times inserts into an emptied ``episodes``: rows/s and CPU µs per row."""

    def __init__(self, store: PgStore, pg: EmbeddedPostgres) -> None:
        self.store, self.pg = store, pg

    def once(self, fn: Insert, records: list[Record]) -> tuple[float, float, float]:
        """One timed insert: (rows/s, client CPU µs/row, server CPU µs/row)."""
        with self.store.connection() as conn:
            conn.execute("TRUNCATE episodes, memory_events")
        cpu0, srv0 = time.process_time(), server_cpu_s(self.pg)
        start = time.perf_counter()
        fn(records)
        took = time.perf_counter() - start
        client = (time.process_time() - cpu0) / len(records) * 1e6
        server = (server_cpu_s(self.pg) - srv0) / len(records) * 1e6
        assert self.store.count() == len(records), "not every row arrived"
        return len(records) / took, client, server

    def rounds(
        self, runs: list[tuple[str, Insert, list[Record]]], repeat: int
    ) -> list[tuple[str, int, float, float, float, str]]:
        """Each run ``repeat`` times, round-robin (so every run sees the same load over
        time); per run the median of each figure and the mean load average."""
        got: list[list[tuple[float, float, float]]] = [[] for _ in runs]
        loads: list[list[float]] = [[] for _ in runs]
        for _ in range(repeat):
            for i, (_, fn, recs) in enumerate(runs):
                got[i].append(self.once(fn, recs))
                loads[i].append(os.getloadavg()[0])
        med = statistics.median
        return [
            (name, len(recs), *(med(x[j] for x in got[i]) for j in range(3)), load_of(loads[i]))
            for i, (name, _, recs) in enumerate(runs)
        ]


def load_of(loads: list[float]) -> str:
    return f"{statistics.mean(loads):.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50000)
    ap.add_argument("--texts", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3, help="runs per row; the median is shown")
    ap.add_argument("--plot", action="store_true")
    args = ap.parse_args()

    print(load_line("at start"), flush=True)
    pg = embedded_postgres("pg-ingest")
    dsn = fresh_db(pg.dsn, "ingest")
    cfg = MemoryConfig(pool_max=2)  # copy_connections=2: large batches use both
    store = PgStore(dsn, cfg)
    one = PgStore(dsn, replace(cfg, copy_connections=1))
    # no HNSW index during bulk ingest (it is built after a bulk load); see row 5
    with store.connection() as conn:
        conn.execute(f"DROP INDEX IF EXISTS {store.index_name}")
    vecs, _ = Mixture().draw(args.rows, seed=3)
    records = make_records(vecs)
    cols = ", ".join(COLUMNS)

    def write_row_copy(recs: Sequence[Record]) -> None:
        with (
            one.connection() as conn,
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(f"COPY episodes ({cols}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types(list(TYPES))
            for r in recs:
                copy.write_row(to_row(r))

    def executemany(recs: Sequence[Record]) -> None:
        marks = ", ".join(["%s"] * len(COLUMNS))
        with store.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO episodes ({cols}) VALUES ({marks})", [to_row(r) for r in recs]
            )

    def no_log(recs: Sequence[Record]) -> None:
        with store.connection() as conn:
            conn.execute("ALTER TABLE episodes DISABLE TRIGGER episodes_log_stores")
        try:
            store.insert(recs)
        finally:
            with store.connection() as conn:
                conn.execute("ALTER TABLE episodes ENABLE TRIGGER episodes_log_stores")

    timer = Timer(store, pg)
    many_rows = records[: max(1000, args.rows // 10)]  # the slow baseline on fewer rows
    results = timer.rounds(
        [
            ("PgStore.insert, 2 connections", store.insert, records),
            ("PgStore.insert, 2 conn., no event log", no_log, records),
            ("PgStore.insert, 1 connection", one.insert, records),
            ("psycopg write_row COPY, 1 connection", write_row_copy, records),
            ("executemany INSERT (baseline)", executemany, many_rows),
        ],
        args.repeat,
    )
    # the ts and context indexes' share: the service path without them
    with store.connection() as conn:
        conn.execute("DROP INDEX episodes_ts_idx")
        conn.execute("DROP INDEX episodes_context_idx")
    no_idx = ("PgStore.insert, 2 conn., primary key only", store.insert, records)
    results[4:4] = timer.rounds([no_idx], args.repeat)
    # the service's steady state: every row also goes into the HNSW graph
    store.ensure_index()
    few = records[: max(500, args.rows // 25)]
    results[5:5] = timer.rounds([("PgStore.insert, HNSW index maintained", store.insert, few)], 1)
    base = results[-1][2]
    rows = [
        (name, n, f"{rate:,.0f}", f"{rate / base:.1f}x", f"{cli:.2f}", f"{srv:.2f}", ld)
        for name, n, rate, cli, srv, ld in results
    ]

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
            "-",
            "-",
            load(),
        )
    )
    header = ("method", "rows", "rows/s", "vs executemany", "client µs/row", "server µs/row")
    print(
        f"median of {args.repeat} runs per row, rows 1-3 and the baseline round-robin "
        "(HNSW and MiniLM rows: 1 run); load 1m: mean over a row's runs"
    )
    print(table((*header, "load 1m"), rows))
    print(load_line("at end"))
    print(
        f"\nCOPY / executemany = {results[0][2] / base:.1f}x (service path, 2 connections), "
        f"{results[2][2] / base:.1f}x (1 connection); MiniLM-bound ingest {rate:,.0f} texts/s"
    )
    print(
        f"event log: with / without = {results[0][2] / results[1][2]:.2f}x rows/s "
        f"({results[0][4] - results[1][4]:+.2f} server µs/row)"
    )
    print("(executemany is psycopg 3's, which pipelines the INSERTs: a strong baseline)")
    print("CPU µs/row: this process (client) and every process of the Postgres server")
    if args.plot:
        bars = [(r[0], cell_number(r[2])) for r in rows]
        barh_plot(bars, xlabel="rows/s (log)", filename="memory_ingest.png", log=True)
    one.close()
    store.close()


if __name__ == "__main__":
    main()
