"""A forgotten episode's words are nowhere: not in any Postgres table (episodes, facts,
the graph, the event log, the staging tables) nor in a file of the state directory."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from emily.bus.endpoints import CONSOLIDATE, EVENTS, EXPORT, FACTS, FORGET
from emily.bus.schemas.facts import ConsolidateRequest, FactsRequest
from emily.bus.schemas.lifecycle import EventsRequest, ExportRequest, ForgetRequest
from emily.embed import Embedder
from emily.ids import uuid7
from emily.memory.record import Record, normalize
from tests.memory.conftest import KEYS, Running
from tests.memory.test_service import recall, store

pytestmark = pytest.mark.slow
#: Words that appear nowhere else: the dog's name, the street, the queued episode's city
#: and the one of an episode queued, delivered, then forgotten.
SECRETS = ("Quorbaxel", "Vintrabel", "Zelmorvik", "Plexuvane")


def tables_holding(dsn: str, word: str) -> dict[str, int]:
    """Rows of every table of the database whose text form contains ``word``."""
    found: dict[str, int] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        names = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        assert {"episodes", "facts", "entities", "memory_events"} <= {n for _, n in names}
        for schema, name in names:
            query = sql.SQL("SELECT count(*) FROM {} t WHERE t::text ILIKE %s").format(
                sql.Identifier(schema, name)
            )
            row = conn.execute(query, (f"%{word}%",)).fetchone()
            if row and row[0]:
                found[f"{schema}.{name}"] = int(row[0])
    return found


def files_holding(root: Path, word: str) -> list[Path]:
    """Files under ``root`` whose bytes contain ``word`` (any case, UTF-8)."""
    needle = word.lower().encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes().lower()]


def test_a_forgotten_episode_leaves_no_word_in_postgres_or_the_state_dir(
    running: Running, embedder: Embedder
) -> None:
    memory = running.service.memory
    client = running.client
    kept = store(client, ["The cat sleeps on the warm windowsill"]).ids
    ids = store(
        client,
        [f"My dog is called {SECRETS[0]}", f"I live in {SECRETS[1]} street"],
        context={"media_sha256": "b" * 64},
    ).ids
    assert memory.indexer is not None and memory.indexer.ready.wait(30)
    for _ in range(3):  # into the cache tiers, L2's slots on disk included
        recall(client, f"what is my dog called, {SECRETS[0]}?", k=1)
        recall(client, f"where do I live, {SECRETS[1]}?", k=1)
    CONSOLIDATE.call(client, KEYS, ConsolidateRequest(), timeout_s=60)
    dog = FACTS.call(client, KEYS, FactsRequest(subject="dog"), timeout_s=30).facts
    assert [f.value for f in dog] == [SECRETS[0]]
    late, text = (f"The train to {city} was cancelled" for city in SECRETS[3:1:-1])
    vectors = [normalize(v) for v in embedder.embed([late, text])]
    delivered = Record(id=uuid7(), ts=dog[0].valid_from, text=late, embedding=vectors[0])
    memory.outbox.put([delivered])  # stored while Postgres was away, delivered since
    assert memory.drain_outbox() == 1
    queued = Record(id=uuid7(), ts=dog[0].valid_from, text=text, embedding=vectors[1])
    memory.outbox.put([queued])
    memory.events.flush_moves()
    memory.indexer.save()
    memory.tiers.save()
    # before: the words are there, so the search below can find them
    assert "public.facts" in tables_holding(running.dsn, SECRETS[0])
    assert "public.entities" in tables_holding(running.dsn, SECRETS[0])
    assert "public.episodes" in tables_holding(running.dsn, SECRETS[1])
    assert files_holding(running.cfg.root, SECRETS[2])  # the outbox's copy
    assert "public.episodes" in tables_holding(running.dsn, SECRETS[3])

    # first the delivered one alone: no queued copy is removed with it
    got = FORGET.call(client, KEYS, ForgetRequest(ids=[delivered.id]), timeout_s=30)
    assert got.forgotten == [delivered.id]
    assert tables_holding(running.dsn, SECRETS[3]) == {}
    assert files_holding(running.cfg.root, SECRETS[3]) == []
    gone = [*ids, queued.id]
    got = FORGET.call(client, KEYS, ForgetRequest(ids=gone), timeout_s=30)
    assert sorted(got.forgotten) == sorted(gone) and got.facts_removed == 2
    memory.tiers.save()
    memory.indexer.save()
    memory.tiers.l2.flush()

    for word in SECRETS:
        assert tables_holding(running.dsn, word) == {}, word
        assert files_holding(running.cfg.root, word) == [], word
    log = EVENTS.call(client, KEYS, EventsRequest(), timeout_s=10).events
    assert {e.op for e in log if e.episode_id in ids} >= {"store", "forget", "fact"}
    # what a forget leaves in the log: ids, the media's hash and whether it is orphaned
    for event in log:
        assert set(event.detail) <= {"from", "to", "into", "by", "media_sha256", "media_orphaned"}
    page = EXPORT.call(client, KEYS, ExportRequest(), timeout_s=30)
    assert [e.id for e in page.episodes] == kept
    assert not any(SECRETS[0] in f.value for f in page.facts)
