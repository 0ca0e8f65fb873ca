"""Trimming memory's event log while a writer appends to it, in the same run: the
writer's append latency (one event per transaction, through the counter row) with no
trim running (the baseline), during the bounded trim (``Retention.batch`` events per
transaction, what the maintenance loop runs) and during the same trim in one
transaction; and each trim's throughput and longest transaction.

    .venv/bin/python bench/memory_event_trim.py [--events 200000] [--batch 10000]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import psycopg
from common import load_line, pcts, percentile, table
from memory_common import embedded_postgres, fresh_db

from emily.memory import events
from emily.memory.events import Retention
from emily.memory.migrate import apply_migrations

KEEP = 1000  # events left after each trim


def fill(dsn: str, n: int) -> None:
    """A fresh log of ``n`` fact events, appended 10,000 per transaction."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        apply_migrations(conn)
        for start in range(0, n, 10_000):
            with conn.transaction():
                events.append(conn, [events.Change("fact", user="u")] * min(10_000, n - start))


def writer(dsn: str, stop: threading.Event, out: list[float]) -> None:
    """Append one event per transaction until ``stop``; latencies (ms) go to ``out``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.is_set():
            t0 = time.perf_counter()
            with conn.transaction():
                events.append(conn, [events.Change("store", user="u")])
            out.append((time.perf_counter() - t0) * 1000)


def run(dsn0: str, n: int, batch: int | None, idle_s: float) -> tuple[float, float, list[float]]:
    """One mode on a fresh log: ``batch`` None runs no trim (the writer alone for
    ``idle_s``); returns the trim's seconds, its longest transaction (s) and the
    writer's latencies (ms)."""
    dsn = fresh_db(dsn0, "event_trim")
    fill(dsn, n)
    stop, lat = threading.Event(), []
    thread = threading.Thread(target=writer, args=(dsn, stop, lat))
    thread.start()
    time.sleep(0.5)  # the writer is warm
    lat.clear()
    took = longest = 0.0
    with psycopg.connect(dsn, autocommit=True) as conn:
        if batch is None:
            time.sleep(idle_s)
        else:
            ret = Retention(keep_days=0, keep_max=KEEP, batch=batch)
            while True:  # events.trim's loop, one transaction timed at a time
                t0 = time.perf_counter()
                upto = events.trimmed(conn) + batch
                if not events.trim(conn, ret, upto=upto):
                    break
                step = time.perf_counter() - t0
                took, longest = took + step, max(longest, step)
    stop.set()
    thread.join()
    return took, longest, lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=Retention().batch)
    ap.add_argument("--reps", type=int, default=3, help="rounds, the modes in turn")
    args = ap.parse_args()
    print(load_line("at start"))
    pg = embedded_postgres("event_trim")
    modes: dict[str, int | None] = {
        "no trim (baseline)": None,
        f"trim, {args.batch:,} per transaction": args.batch,
        "trim, one transaction": args.events,
    }
    took: dict[str, list[float]] = {m: [] for m in modes}
    longest: dict[str, list[float]] = {m: [] for m in modes}
    lat: dict[str, list[float]] = {m: [] for m in modes}
    idle_s = 1.0
    for _ in range(args.reps):  # round-robin, so drifting load hits every mode alike
        for name, batch in modes.items():
            t, most, ms = run(pg.dsn, args.events, batch, idle_s)
            took[name].append(t)
            longest[name].append(most)
            lat[name].extend(ms)
            if batch is not None:
                idle_s = max(idle_s, t)
    base = percentile(lat["no trim (baseline)"], 99)
    rows = []
    for name, batch in modes.items():
        trim_s = statistics.median(took[name])
        rows.append(
            (
                name,
                f"{trim_s:.2f}" if batch else "-",
                f"{(args.events - KEEP) / trim_s:,.0f}" if batch else "-",
                f"{statistics.median(longest[name]) * 1000:.0f}" if batch else "-",
                f"{percentile(lat[name], 50):.3f}",
                f"{percentile(lat[name], 99):.3f}",
                f"{max(lat[name]):.1f}",
                f"{percentile(lat[name], 99) / base:.2f}x",
            )
        )
        print(f"{name}: append {pcts(lat[name])}")
    print(
        f"log of {args.events:,} events trimmed to {KEEP:,}, {args.reps} rounds (medians of "
        "the trims); a writer appends one event per transaction meanwhile"
    )
    header = (
        "mode",
        "trim s",
        "events/s",
        "longest txn ms",
        "append p50 ms",
        "p99 ms",
        "max ms",
        "p99 vs baseline",
    )
    print(table(header, rows))
    print(load_line("at end"))


if __name__ == "__main__":
    main()
