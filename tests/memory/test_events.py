"""The event log: gap-free sequence numbers in Postgres, relayed on the bus."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import psycopg
import pytest
import zenoh

from emily.bus.endpoints import EVENTS, MEMORY_OPERATIONS
from emily.bus.messages import decode
from emily.bus.schemas.lifecycle import EventsRequest
from emily.bus.schemas.memory import MemoryOperation, MemoryOperations
from emily.memory import events
from emily.memory.config import MemoryConfig
from emily.memory.store import PgStore
from tests.memory.conftest import KEYS, Running
from tests.memory.helpers import records
from tests.memory.test_service import FACTS, recall, store

pytestmark = pytest.mark.slow


def _seqs(dsn: str) -> list[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT seq FROM memory_events ORDER BY seq")]


def test_every_insert_path_logs_each_new_episode_once(pg_dsn: str, tmp_path: Path) -> None:
    cfg = MemoryConfig(state=tmp_path, copy_part_rows=16, hnsw_m=8, hnsw_ef_construction=32)
    store_ = PgStore(pg_dsn, cfg)
    try:
        recs = records(80)
        store_.insert(recs[:1])  # one INSERT
        store_.insert(recs[1:60])  # a COPY split over two connections
        store_.insert(recs[:70])  # a retry through the staging table: 10 new rows
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            log = events.read(conn, 0).events
    finally:
        store_.close()
    assert [e.seq for e in log] == list(range(1, 71))
    got = [e.episode_id for e in log]
    # the COPY's parts are transactions of their own: each logs its rows when it commits
    assert got[0] == recs[0].id and set(got[1:60]) == {r.id for r in recs[1:60]}
    assert set(got[60:]) == {r.id for r in recs[60:70]} and len(set(got)) == 70
    assert {(e.op, e.user) for e in log} == {("store", "default")}


def test_concurrent_changes_with_rollbacks_leave_no_gap(pg_dsn: str, tmp_path: Path) -> None:
    PgStore(pg_dsn, MemoryConfig(state=tmp_path)).close()  # migrations
    committed: list[int] = []
    lock = threading.Lock()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            for _ in range(40):
                n = rng.randint(1, 3)
                rollback = rng.random() < 0.3
                with conn.transaction(force_rollback=rollback):
                    changes = [events.Change("fact", user=f"u{seed}") for _ in range(n)]
                    last = events.append(conn, changes)
                if not rollback and last is not None:
                    with lock:
                        committed.extend(range(last - n + 1, last + 1))

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = _seqs(pg_dsn)
    assert seqs == list(range(1, len(seqs) + 1)) == sorted(committed)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert events.last_seq(conn) == len(seqs)
        with pytest.raises(ValueError, match="not a logged memory event"), conn.transaction():
            events.append(conn, [events.Change("hit")])


def test_a_subscriber_that_misses_messages_detects_the_gap_and_reads_what_it_missed(
    running: Running,
) -> None:
    seen: dict[int, MemoryOperation] = {}
    arrived = threading.Condition()

    def on_sample(sample: zenoh.Sample) -> None:
        with arrived:
            for op in decode(MemoryOperations, sample.payload.to_bytes()).ops:
                if op.seq is not None:
                    seen[op.seq] = op
            arrived.notify_all()

    def wait_for(n: int) -> None:
        deadline = time.monotonic() + 20
        with arrived:
            while max(seen, default=0) < n and time.monotonic() < deadline:
                arrived.wait(0.5)

    key = MEMORY_OPERATIONS.key(KEYS)
    sub = running.client.declare_subscriber(key, on_sample)
    first = store(running.client, FACTS[:2]).ids
    wait_for(2)
    sub.undeclare()  # the subscriber is away: these events are published to nobody
    missed = store(running.client, FACTS[2:5]).ids
    while (running.service.memory.events.relayed or 0) < 5:  # published to nobody
        time.sleep(0.05)
    sub = running.client.declare_subscriber(key, on_sample)
    try:
        time.sleep(0.5)  # the new subscription reaches the publisher
        last = store(running.client, FACTS[5:]).ids
        wait_for(6)
    finally:
        sub.undeclare()
    assert sorted(seen) == [1, 2, 6]  # seq jumps from 2 to 6: a gap
    gap_from = max(s for s in seen if s + 1 not in seen and s < max(seen))
    page = EVENTS.call(running.client, KEYS, EventsRequest(since=gap_from), timeout_s=10)
    assert [e.seq for e in page.events] == [3, 4, 5, 6] and page.last == 6
    assert [e.episode_id for e in page.events] == [*missed, *last]
    assert [seen[s].episode_id for s in (1, 2)] == first
    assert {e.op for e in page.events} == {"store"}


def test_tier_moves_are_logged_in_batches_and_relayed_with_their_seq(running: Running) -> None:
    memory = running.service.memory
    ids = store(running.client, FACTS).ids
    recall(running.client, "where are my keys?", k=2)  # two episodes: L3 -> L2
    memory.events.flush_moves()
    page = EVENTS.call(running.client, KEYS, EventsRequest(since=len(ids)), timeout_s=10)
    moves = [e for e in page.events if e.op == "promote"]
    assert len(moves) == 2 and {e.episode_id for e in moves} <= set(ids)
    assert {(e.detail["from"], e.detail["to"]) for e in moves} == {("L3", "L2")}
    op = events.operation(moves[0])
    assert (op.seq, op.from_tier, op.to_tier) == (moves[0].seq, "L3", "L2")
    assert memory.events.pending_moves() == 0
