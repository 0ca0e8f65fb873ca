"""Forget marks: an episode said before a forget and delivered after it (a turn that
waited in a queue) is withheld, on every insert path and across a restart, while what is
said after the forget is stored; the marks leave Postgres after ``forget_marks_days``."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from emily.bus.schemas.context import MEDIA_KEY, MEDIA_ORPHANED
from emily.bus.schemas.lifecycle import ForgetReply, ForgetRequest
from emily.bus.schemas.memory import EMBED_DIM, EpisodeIn, StoreReply, StoreRequest
from emily.errors import ConfigError
from emily.ids import uuid7
from emily.memory.config import MemoryConfig
from emily.memory.core import Memory
from emily.memory.embedded import EmbeddedPostgres
from emily.memory.errors import StoreUnavailable
from emily.memory.forget_marks import Mark, said_at
from emily.memory.lifecycle import forget
from emily.memory.metrics import MemoryMetrics
from emily.memory.record import Record, normalize
from emily.memory.store import PgStore

RNG = np.random.default_rng(7)


def vector() -> list[float]:
    return [float(x) for x in normalize(RNG.standard_normal(EMBED_DIM))]


def said(text: str, user: str = "default", media: str | None = None) -> EpisodeIn:
    """An episode as cognition queues it: its UUIDv7 id made when it was said."""
    context = {MEDIA_KEY: media} if media else {}
    return EpisodeIn(id=uuid7(), text=text, user=user, embedding=vector(), context=context)


def record(ep: EpisodeIn) -> Record:
    assert ep.id is not None and ep.embedding is not None
    return Record.from_input(ep, ep.id, normalize(ep.embedding))


def rows_with(dsn: str, word: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM episodes WHERE text ILIKE %s", (f"%{word}%",))
        got = row.fetchone()
    assert got is not None
    return int(got[0])


def marks_in(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        got = conn.execute("SELECT count(*) FROM memory_forget_marks").fetchone()
    assert got is not None
    return int(got[0])


def open_memory(dsn: str, root: Path, **cfg: object) -> Memory:
    conf = MemoryConfig(state=root, hnsw_m=8, hnsw_ef_construction=32, **cfg)  # type: ignore[arg-type]
    return Memory(conf, PgStore(dsn, conf), None, metrics=MemoryMetrics())


@pytest.fixture
def memory(pg_dsn: str, tmp_path: Path) -> Iterator[Memory]:
    mem = open_memory(pg_dsn, tmp_path / "memory")
    yield mem
    mem.close()


def test_said_at_is_the_uuid7_time_else_the_timestamp() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=2)
    ep = said("hello")
    assert before <= said_at(record(ep)) <= datetime.now(UTC)
    old = datetime(2020, 5, 1, tzinfo=UTC)
    v4 = EpisodeIn(id=uuid.uuid4(), text="hello", timestamp=old, embedding=vector())
    assert said_at(record(v4)) == old


def test_a_mark_covers_its_user_s_earlier_matching_or_named_episodes_only() -> None:
    early = record(said("My PIN is 4711"))
    other = record(said("my pin is 4711", user="bob"))
    at = datetime.now(UTC) + timedelta(milliseconds=5)
    late = record(said("my pin is 4711"))
    match = Mark("default", at, match="pin is 4711")
    assert match.covers(early) and not match.covers(other)
    assert not Mark("default", said_at(early), match="pin").covers(early)  # said at the mark
    named = Mark("default", at - timedelta(days=1), ids=frozenset({early.id}))
    assert named.covers(early) and not named.covers(late)  # ids: whenever they were said
    assert not Mark("default", at, match="4712").covers(early)


def test_a_turn_queued_elsewhere_while_it_was_forgotten_is_withheld_on_delivery(
    memory: Memory, pg_dsn: str
) -> None:
    queued = [said("My locker code is Zarnovel 93"), said("I like tea")]
    reply = forget(memory, ForgetRequest(match="zarnovel"))
    assert reply.forgotten == [] and marks_in(pg_dsn) == 1  # nothing stored yet to forget
    stored = memory.store_episodes(StoreRequest(episodes=queued))
    assert stored.durable and stored.ids == [q.id for q in queued]
    assert stored.withheld == [queued[0].id]
    assert rows_with(pg_dsn, "Zarnovel") == 0 and rows_with(pg_dsn, "I like tea") == 1
    assert memory.metrics.withheld._value.get() == 1
    # said after the forget, the same words are stored as usual
    again = memory.store_episodes(StoreRequest(episodes=[said("My locker code is Zarnovel 93")]))
    assert again.withheld == [] and rows_with(pg_dsn, "Zarnovel") == 1


def test_the_outbox_s_delivery_withholds_too_and_lets_the_row_go(
    memory: Memory, pg_dsn: str
) -> None:
    early = said("my passport number is Q7714")
    forget(memory, ForgetRequest(match="Q7714"))
    memory.outbox.put([record(early)])  # queued while Postgres was away, after the forget
    assert memory.drain_outbox() == 1 and memory.outbox.pending() == 0
    assert rows_with(pg_dsn, "Q7714") == 0


def test_a_forget_of_ids_not_stored_yet_withholds_them_when_they_arrive(
    memory: Memory, pg_dsn: str
) -> None:
    early = said("the alarm code is Wexlor")
    reply = forget(memory, ForgetRequest(ids=[early.id]))  # type: ignore[list-item]
    assert reply.missing == [early.id]
    assert memory.store_episodes(StoreRequest(episodes=[early])).withheld == [early.id]
    assert rows_with(pg_dsn, "Wexlor") == 0


def test_marks_outlive_a_restart_and_leave_after_forget_marks_days(
    pg_dsn: str, tmp_path: Path
) -> None:
    early = said("my safe opens with Trivane")
    first = open_memory(pg_dsn, tmp_path / "memory")
    try:
        forget(first, ForgetRequest(match="trivane"))
    finally:
        first.close()
    second = open_memory(pg_dsn, tmp_path / "memory")
    try:
        assert second.store_episodes(StoreRequest(episodes=[early])).withheld == [early.id]
        assert len(second.marks) == 1 and second.marks.trim() == 0
        with psycopg.connect(pg_dsn) as conn:
            conn.execute("UPDATE memory_forget_marks SET at = now() - interval '8 days'")
        assert second.marks.trim() == 1 and len(second.marks) == 0 and marks_in(pg_dsn) == 0
        assert second.store_episodes(StoreRequest(episodes=[early])).withheld == []
        assert rows_with(pg_dsn, "Trivane") == 1
    finally:
        second.close()


def test_a_dry_run_leaves_no_mark_and_forget_marks_days_0_leaves_none(
    pg_dsn: str, tmp_path: Path
) -> None:
    mem = open_memory(pg_dsn, tmp_path / "memory", forget_marks_days=0.0)
    try:
        forget(mem, ForgetRequest(match="anything", dry_run=True))
        early = said("the word is Holvang")
        forget(mem, ForgetRequest(match="holvang"))
        assert marks_in(pg_dsn) == 0
        assert mem.store_episodes(StoreRequest(episodes=[early])).withheld == []
    finally:
        mem.close()
    live = open_memory(pg_dsn, tmp_path / "other")
    try:
        forget(live, ForgetRequest(match="anything", dry_run=True))
        assert marks_in(pg_dsn) == 0 and len(live.marks) == 0
    finally:
        live.close()


def test_forget_marks_days_is_validated() -> None:
    with pytest.raises(ConfigError, match="forget_marks_days"):
        MemoryConfig(forget_marks_days=-1)
    with pytest.raises(ConfigError, match="forget_marks_days"):
        MemoryConfig(forget_marks_days=366)


def test_injected_postgres_kill_a_restore_is_refused_not_queued(
    memory: Memory, pg_dsn: str, pg_server: EmbeddedPostgres
) -> None:
    """A restore stores what a mark covers; while Postgres is away it is refused, since
    queued it would meet the marks on delivery, where a plain store waits in the outbox."""
    early = said("the gate code is Brunvale")
    forget(memory, ForgetRequest(match="brunvale"))
    back = memory.store_episodes(StoreRequest(episodes=[early], restore=True))
    assert back.durable and back.withheld == [] and rows_with(pg_dsn, "Brunvale") == 1
    pg_server.kill()  # the fault
    try:
        queued = memory.store_episodes(StoreRequest(episodes=[said("I like tea")]))
        assert not queued.durable and queued.queued == 1
        with pytest.raises(StoreUnavailable):
            memory.store_episodes(StoreRequest(episodes=[said("I like coffee")], restore=True))
        assert memory.outbox.pending() == 1
    finally:
        pg_server.start()


def forget_events(dsn: str) -> list[tuple[uuid.UUID, dict[str, object]]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT episode_id, detail FROM memory_events WHERE op = 'forget' ORDER BY seq"
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def test_a_withheld_episode_is_logged_forgotten_with_its_media_for_perception(
    memory: Memory, pg_dsn: str
) -> None:
    photo, shared = "a" * 64, "b" * 64
    alone = said("a photo of my passport, Q7714", media=photo)
    twin = said("a voice note: Q7714 is the number", media=shared)
    forget(memory, ForgetRequest(match="q7714"))
    kept = said("a voice note, the rest of it", media=shared)  # said after: stored
    reply = memory.store_episodes(StoreRequest(episodes=[alone, twin, kept]))
    assert reply.withheld == [alone.id, twin.id]
    assert forget_events(pg_dsn) == [
        (alone.id, {MEDIA_KEY: photo, MEDIA_ORPHANED: True}),
        (twin.id, {MEDIA_KEY: shared, MEDIA_ORPHANED: False}),  # ``kept`` still names it
    ]


def test_injected_pause_in_a_stores_commit_a_concurrent_forget_still_reaches_it(
    memory: Memory, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store checked against the marks just before a forget, and held up before its
    commit, would commit just after the forget's search and keep what was forgotten. The
    forget waits for it instead, finds it and deletes it."""
    in_commit, go = threading.Event(), threading.Event()
    real_insert = memory.store.insert

    def held_up(records: list[Record]) -> int:
        in_commit.set()
        go.wait(120)
        return real_insert(records)

    monkeypatch.setattr(memory.store, "insert", held_up)
    ep = said("my bank PIN is Krellwyn 5150")
    stored: list[StoreReply] = []
    storer = threading.Thread(
        target=lambda: stored.append(memory.store_episodes(StoreRequest(episodes=[ep])))
    )
    storer.start()
    assert in_commit.wait(60)  # the store is past the marks' check, before its commit
    forgot: list[ForgetReply] = []
    forgetter = threading.Thread(
        target=lambda: forgot.append(forget(memory, ForgetRequest(match="krellwyn")))
    )
    forgetter.start()
    forgetter.join(1.0)
    assert forgetter.is_alive(), forgot  # the forget waits for the store's commit
    go.set()
    storer.join(60)
    forgetter.join(60)
    assert stored[0].durable and stored[0].withheld == []
    assert forgot[0].forgotten == [ep.id]
    assert rows_with(pg_dsn, "Krellwyn") == 0
    # said after the forget, the same words are stored as usual
    assert memory.store_episodes(StoreRequest(episodes=[said("Krellwyn is my dog")])).durable
    assert rows_with(pg_dsn, "Krellwyn") == 1
