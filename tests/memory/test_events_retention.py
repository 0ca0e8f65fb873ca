"""The event log is bounded: trimmed by age and count in batches, never past what the
relay has not published, by the maintenance loop, with a trim point readers see."""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emily.bus.endpoints import EVENTS, REBUILD
from emily.bus.schemas.lifecycle import EventsRequest, RebuildRequest
from emily.bus.schemas.memory import MemoryOperation
from emily.errors import ConfigError
from emily.memory import events
from emily.memory.config import MemoryConfig
from emily.memory.core import Memory
from emily.memory.events import Retention
from emily.memory.lifecycle import events_page
from emily.memory.metrics import MemoryMetrics
from emily.memory.store import PgStore
from tests.memory.conftest import KEYS, Running
from tests.memory.helpers import records
from tests.memory.test_service import FACTS, recall, store

pytestmark = pytest.mark.slow


def _log(memory: Memory, n: int) -> int:
    """Append ``n`` fact events in one transaction; returns the last seq."""
    with memory.store.connection() as conn, conn.transaction():
        last = events.append(conn, [events.Change("fact", user="u") for _ in range(n)])
    assert last is not None
    return last


def _seqs(memory: Memory) -> list[int]:
    with memory.store.connection() as conn:
        return [r[0] for r in conn.execute("SELECT seq FROM memory_events ORDER BY seq")]


def _age(memory: Memory, seqs: Sequence[int], days: float) -> None:
    with memory.store.connection() as conn:
        conn.execute(
            "UPDATE memory_events SET at = now() - make_interval(days => %s) WHERE seq = ANY(%s)",
            (days, list(seqs)),
        )


def test_the_count_bound_keeps_the_newest_events_and_readers_see_the_trim_point(
    memory: Memory,
) -> None:
    assert _log(memory, 250) == 250
    with memory.store.connection() as conn:
        assert events.read(conn, 0, 5).trimmed == 0
        # a batch per transaction: a bound of 40 rows still gets there, never past upto
        assert events.trim(conn, Retention(keep_days=0, keep_max=100, batch=40), upto=120) == 120
        assert events.trim(conn, Retention(keep_days=0, keep_max=100, batch=40)) == 30
        assert events.trim(conn, Retention(keep_days=0, keep_max=100, batch=40)) == 0
        page = events.read(conn, 0, 10)
        assert (page.trimmed, page.last) == (150, 250) and events.kept(conn) == 100
        assert [e.seq for e in page.events] == list(range(151, 161))
        later = events.read(conn, 200, 1000)  # a reader past the trim point lost nothing
        assert later.trimmed < 200 and [e.seq for e in later.events] == list(range(201, 251))
    assert _seqs(memory) == list(range(151, 251))
    assert _log(memory, 1) == 251  # numbering goes on after a trim


def test_the_age_bound_trims_the_oldest_run_up_to_the_first_young_event(
    memory: Memory,
) -> None:
    _log(memory, 60)
    _age(memory, range(1, 31), days=40)
    _age(memory, [35], days=40)  # old, but after a young one: kept with it, no hole
    with memory.store.connection() as conn:
        assert events.trim(conn, Retention(keep_days=30, keep_max=0, batch=7)) == 30
        assert events.trimmed(conn) == 30
        assert events.trim(conn, Retention(keep_days=50, keep_max=0)) == 0
        assert events.trim(conn, Retention(keep_days=0, keep_max=0)) == 0  # no bound
    assert _seqs(memory) == list(range(31, 61))


def test_nothing_the_relay_has_not_published_is_trimmed(memory: Memory) -> None:
    release = threading.Event()
    published: list[int] = []

    def publish(ops: Sequence[MemoryOperation]) -> None:
        release.wait()  # a slow subscriber path: the relay is stuck on its first page
        published.extend(o.seq or 0 for o in ops)

    memory.events.start(publish)
    _log(memory, 50)
    memory.events.notify()
    keep_10 = Retention(keep_days=0, keep_max=10)
    try:
        assert memory.events.trim(keep_10) == 0 and memory.events.relayed == 0
    finally:
        release.set()
    while memory.events.relayed != 50:
        time.sleep(0.05)
    assert memory.events.trim(keep_10) == 40 and published == list(range(1, 51))
    assert memory.events.kept == 10 and memory.events.trimmed == 40


def test_any_appends_and_trims_keep_a_gap_free_run_after_the_trim_point(
    memory: Memory,
) -> None:
    """Property: whatever appends and trims (bounds, batch sizes, reader positions)
    come in whatever order, the log holds exactly the events after its trim point, a
    count bound holds after its trim, and no trim passes its reader."""
    append = st.tuples(st.just("append"), st.integers(1, 30))
    cut = st.tuples(
        st.just("trim"),
        st.tuples(st.integers(0, 40), st.integers(1, 25), st.one_of(st.none(), st.integers(0, 60))),
    )

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(st.lists(st.one_of(append, cut), min_size=1, max_size=12))
    def run(steps: list[tuple[str, object]]) -> None:
        with memory.store.connection() as conn:
            for op, arg in steps:
                if op == "append":
                    assert isinstance(arg, int)
                    _log(memory, arg)
                    continue
                assert isinstance(arg, tuple)
                keep_max, batch, behind = arg
                last, before = events.last_seq(conn), events.trimmed(conn)
                upto = None if behind is None else max(0, last - behind)
                gone = events.trim(conn, Retention(0, keep_max, batch), upto)
                after = events.trimmed(conn)
                assert after - before == gone >= 0
                if upto is not None:
                    assert after <= max(before, upto)
                if keep_max and upto is None:
                    assert events.kept(conn) <= keep_max
                seqs = [r[0] for r in conn.execute("SELECT seq FROM memory_events ORDER BY seq")]
                assert seqs == list(range(after + 1, last + 1))

    run()


def test_the_maintenance_loop_trims_and_exports_the_logs_size(pg_dsn: str, tmp_path: Path) -> None:
    cfg = MemoryConfig(state=tmp_path, events_keep_max=5, hnsw_m=8, hnsw_ef_construction=32)
    metrics = MemoryMetrics()
    memory = Memory(cfg, PgStore(pg_dsn, cfg), None, metrics=metrics)
    try:
        _log(memory, 20)
        memory.start_background(period_s=0.05)

        def sample(name: str) -> float | None:
            return metrics.registry.get_sample_value(name)

        while sample("emily_memory_events_trimmed_total") != 15:
            time.sleep(0.05)
        assert sample("emily_memory_events_kept") == 5
        assert _seqs(memory) == list(range(16, 21))
    finally:
        memory.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert events.read(conn, 3).trimmed == 15


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("events_keep_days", -1.0),
        ("events_keep_days", math.nan),
        ("events_keep_days", 40000.0),
        ("events_keep_max", -1),
    ],
)
def test_a_bad_retention_setting_is_refused(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"memory.{field}"):
        MemoryConfig(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keep_days and keep_max"):
        Retention(keep_days=-1)


def test_a_rebuild_trusts_the_running_tier_of_an_episode_whose_moves_were_trimmed(
    running: Running,
) -> None:
    memory = running.service.memory
    ids = store(running.client, FACTS).ids
    for _ in range(2):  # L3 -> L2 -> L1: the moves are in the log
        recall(running.client, "where are my keys?", k=1)
    memory.events.flush_moves()
    assert memory.tiers.tier_of.get(ids[0]) == "L1"
    store(running.client, ["Stored after the moves"])  # the one event kept
    last = EVENTS.call(running.client, KEYS, EventsRequest(), timeout_s=10).last
    while memory.events.relayed != last:
        time.sleep(0.05)
    assert memory.events.trim(Retention(keep_days=0, keep_max=1)) == last - 1
    reply = REBUILD.call(running.client, KEYS, RebuildRequest(), timeout_s=60)
    assert reply.matched  # the log no longer knows its tier; it does not contradict it
    assert memory.tiers.tier_of.get(ids[0]) == "L1"


def test_the_page_names_the_media_stored_or_queued_episodes_still_name(
    memory: Memory,
) -> None:
    stored, queued, gone = "a" * 64, "b" * 64, "c" * 64
    recs = records(3)
    memory.store.insert([dataclasses.replace(recs[0], context={"media_sha256": stored})])
    memory.store.insert([dataclasses.replace(recs[1], user="bob", context={"media_sha256": gone})])
    memory.outbox.put([dataclasses.replace(recs[2], context={"media_sha256": queued})])
    with memory.store.connection() as conn:
        conn.execute("DELETE FROM episodes WHERE id = %s", (recs[1].id,))
    page = events_page(memory, EventsRequest(limit=1, media=[gone, queued, stored, "d" * 64]))
    assert page.named == sorted([queued, stored]) and len(page.events) == 1
    assert events_page(memory, EventsRequest(limit=1)).named == []  # nothing asked
