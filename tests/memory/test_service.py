"""The memory service over real Zenoh, Postgres + pgvector and MiniLM."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest
import zenoh

from emily.bus import endpoints
from emily.bus.endpoints import MEMORY_OPERATIONS
from emily.bus.messages import decode
from emily.bus.rpc import call, wait_for_server
from emily.bus.schemas.memory import (
    EMBED_DIM,
    EpisodeIn,
    MemoryOperation,
    MemoryOperations,
    RecallFilters,
    RecallReply,
    RecallRequest,
    StatsReply,
    StatsRequest,
    StoreReply,
    StoreRequest,
)
from emily.embed import Embedder
from emily.memory.embedded import EmbeddedPostgres
from emily.observe import start_metrics_server
from tests.memory.conftest import KEYS, Running, start
from tests.memory.helpers import T0, clustered

pytestmark = pytest.mark.slow
STORE, RECALL, STATS = (e.key(KEYS) for e in (endpoints.STORE, endpoints.RECALL, endpoints.STATS))
FACTS = [
    "I left my keys on the kitchen table",
    "The cat sleeps on the warm windowsill",
    "We had pasta with tomato sauce for dinner",
    "The train to Berlin was two hours late",
    "My sister called about her new job",
    "It rained all afternoon in the park",
]


def store(client: zenoh.Session, texts: list[str], **kw: object) -> StoreReply:
    req = StoreRequest(episodes=[EpisodeIn(text=t, timestamp=T0, **kw) for t in texts])  # type: ignore[arg-type]
    return call(client, STORE, req, StoreReply, timeout_s=60)


def recall(client: zenoh.Session, text: str, k: int = 3, **kw: object) -> RecallReply:
    return call(client, RECALL, RecallRequest(text=text, k=k, **kw), RecallReply, timeout_s=30)  # type: ignore[arg-type]


def test_store_recall_and_stats_over_zenoh(running: Running) -> None:
    reply = store(running.client, FACTS)
    assert reply.durable and reply.queued == 0 and len(set(reply.ids)) == len(FACTS)
    got = recall(running.client, "where are my keys?")
    assert got.hits[0].episode.text == FACTS[0] and got.hits[0].tier == "L3"
    assert got.hits[0].score > got.hits[1].score
    again = recall(running.client, "where are my keys?")
    assert again.hits[0].tier == "L2"  # promoted on first access
    third = recall(running.client, "where are my keys?")
    assert third.hits[0].tier == "L1"
    stats = call(running.client, STATS, StatsRequest(), StatsReply)
    assert stats.episodes == len(FACTS)
    assert {t.tier: t.size for t in stats.tiers}["L3"] == len(FACTS)
    assert stats.misses == 3 and stats.pool.max_size == 4 and stats.index.m == 8


def test_filters_and_hot_scope(running: Running) -> None:
    store(running.client, FACTS[:3], source="diary")
    store(running.client, FACTS[3:], source="mail")
    got = recall(running.client, "dinner", k=5, filters=RecallFilters(source="mail"))
    assert len(got.hits) == 3 and {h.episode.source for h in got.hits} == {"mail"}
    for _ in range(6):
        recall(running.client, "cats", k=1)
    hot = recall(running.client, "a sleeping cat", k=1, scope="hot")
    assert [h.tier for h in hot.hits] == ["L0"]
    assert hot.hits[0].episode.text == FACTS[1]


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        ({"vector": [0.5] * (EMBED_DIM - 1)}, "vector"),
        ({"text": "x" * 9000}, "text"),
        ({"text": "q", "filters": {"mood": "happy"}}, "filters.mood"),
        ({"text": "q", "k": 0}, "k"),
    ],
)
def test_bad_recall_payloads_get_named_errors(
    running: Running, payload: dict[str, object], names: str
) -> None:
    raw = json.dumps(payload).encode()
    replies = list(running.client.get(RECALL, payload=raw, timeout=10))
    assert len(replies) == 1 and replies[0].err is not None
    err = json.loads(replies[0].err.payload.to_bytes())
    assert err["code"] == "bad_request" and names in err["message"]
    # the service keeps serving
    assert call(running.client, STATS, StatsRequest(), StatsReply).episodes == 0


def test_nan_embedding_in_a_store_is_rejected(running: Running) -> None:
    raw = b'{"episodes": [{"text": "x", "embedding": [NaN' + b", 0.0" * (EMBED_DIM - 1) + b"]}]}"
    replies = list(running.client.get(STORE, payload=raw, timeout=10))
    err = json.loads(replies[0].err.payload.to_bytes())  # type: ignore[union-attr]
    assert err["code"] == "bad_request" and "embedding.0" in err["message"]


def test_events_and_metrics(running: Running) -> None:
    events: list[MemoryOperation] = []
    got = threading.Event()

    def on_sample(sample: zenoh.Sample) -> None:
        events.extend(decode(MemoryOperations, sample.payload.to_bytes()).ops)
        if any(e.op == "promote" for e in events):
            got.set()

    sub = running.client.declare_subscriber(MEMORY_OPERATIONS.key(KEYS), on_sample)
    try:
        store(running.client, FACTS)
        recall(running.client, "train delays")
        assert got.wait(10)
    finally:
        sub.undeclare()
    moves = [e for e in events if e.op == "promote"]
    assert {(e.from_tier, e.to_tier) for e in moves} == {("L3", "L2")}
    http = start_metrics_server(running.service.memory.metrics.registry)
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{http.port}/metrics").read().decode()
    finally:
        http.close()
    assert 'emily_memory_promotions_total{from="L3",to="L2"} 3.0' in text
    assert "emily_memory_misses_total 3.0" in text
    assert "emily_memory_pool_max_size 4.0" in text
    assert 'emily_memory_hits_total{tier="L3"} 3.0' in text


def test_restart_keeps_episodes_tiers_and_statistics(
    running: Running, embedder: Embedder, zenoh_pair: tuple[zenoh.Session, zenoh.Session]
) -> None:
    ids = store(running.client, FACTS).ids
    for _ in range(3):
        recall(running.client, "my sister's job", k=1)
    recall(running.client, "rain in the park", k=1)
    before = dict(running.service.memory.tiers.tier_of)
    assert set(before.values()) == {"L1", "L2"}
    running.service.close()
    running.service = start(running.cfg, running.dsn, embedder, zenoh_pair[0])
    assert wait_for_server(running.client, RECALL, timeout_s=10)
    assert running.service.memory.tiers.tier_of == before
    got = recall(running.client, "my sister's job", k=1)
    assert got.hits[0].tier == "L1" and got.hits[0].episode.id in ids


def test_injected_postgres_kill_during_ingest_loses_nothing(
    pg_server: EmbeddedPostgres,
    embedder: Embedder,
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
    running: Running,
) -> None:
    batches = [[f"{fact} (batch {b})" for fact in FACTS] for b in range(8)]
    replies: list[StoreReply] = []
    for b, texts in enumerate(batches):
        if b == 3:
            pg_server.kill()  # the fault: Postgres dies in the middle of the ingest
        replies.append(store(running.client, texts))
    assert not all(r.durable for r in replies) and sum(r.queued for r in replies) >= 6
    pending = running.service.memory.outbox.pending()
    assert pending == sum(r.queued for r in replies)
    pg_server.start()
    memory = running.service.memory
    memory.start_background(period_s=0.2)  # the service's own retry loop delivers them
    deadline = time.monotonic() + 60
    while memory.outbox.pending() and time.monotonic() < deadline:
        time.sleep(0.2)  # the pool reconnects with a backoff
    assert memory.outbox.pending() == 0
    stored = memory.store.all_ids()
    sent = [i for r in replies for i in r.ids]
    assert len(sent) == len(set(sent)) == 48
    assert stored == set(sent)  # every episode once: none lost, none duplicated
    assert memory.store.count() == 48


def test_injected_postgres_kill_mid_copy_loses_nothing(
    pg_server: EmbeddedPostgres, running: Running
) -> None:
    """The kill lands while a large batch is being copied (or committed) by the service."""
    vecs = clustered(4000, seed=3)
    batches = [
        StoreRequest(
            episodes=[
                EpisodeIn(text=f"copy {b}-{i}", embedding=vecs[b * 500 + i].tolist())
                for i in range(500)
            ]
        )
        for b in range(8)
    ]
    replies: list[StoreReply] = []
    first = threading.Event()

    def ingest() -> None:
        for req in batches:
            replies.append(call(running.client, STORE, req, StoreReply, timeout_s=120))
            first.set()

    worker = threading.Thread(target=ingest)
    worker.start()
    assert first.wait(120)
    time.sleep(0.05)  # the next batch is now on its way into COPY
    pg_server.kill()  # the fault
    worker.join(300)
    assert len(replies) == 8 and not all(r.durable for r in replies)
    pg_server.start()
    memory = running.service.memory
    memory.start_background(period_s=0.2)
    deadline = time.monotonic() + 60
    while memory.outbox.pending() and time.monotonic() < deadline:
        time.sleep(0.2)
    sent = [i for r in replies for i in r.ids]
    assert len(set(sent)) == 4000 and memory.outbox.pending() == 0
    assert memory.store.all_ids() == set(sent) and memory.store.count() == 4000


def test_a_batch_of_recalls_mixes_index_postgres_and_hot_answers(running: Running) -> None:
    """What the recall server hands over in one batch: index-answered, filtered
    (Postgres) and hot recalls each get the reply a lone recall would get."""
    store(running.client, FACTS, source="diary")
    memory = running.service.memory
    assert memory.indexer is not None and memory.indexer.ready.wait(60)
    reqs = [
        RecallRequest(text="where are my keys?", k=2),
        RecallRequest(text="train delays", k=3, filters=RecallFilters(source="diary")),
        RecallRequest(text="where are my keys?", k=2, scope="hot"),
        RecallRequest(text="train delays", k=1),
    ]
    replies = running.service.handle_recalls(reqs)
    assert [type(r).__name__ for r in replies] == ["RecallReply"] * 4
    assert [len(r.hits) for r in replies if isinstance(r, RecallReply)] == [2, 3, 0, 1]  # L0 cold
    # alone, afterwards (the hot one is left out: the batch itself promoted episodes)
    for i in (0, 1, 3):
        got, want = replies[i], memory.recall(reqs[i])
        assert isinstance(got, RecallReply)
        assert [h.episode.id for h in got.hits] == [h.episode.id for h in want.hits]
