"""Scoped and hybrid recall through :class:`Memory`, on real Postgres and MiniLM.

Every recall reads one user's episodes: with two users holding near-identical texts,
no path (the in-process index, Postgres, the hot L0 search, a batch, hybrid) returns
the other user's. Hybrid recall finds a rare proper noun that vector search ranks
poorly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from emily.bus.schemas.memory import EpisodeIn, RecallFilters, RecallRequest, StoreRequest
from emily.embed import Embedder
from emily.memory.config import MemoryConfig
from emily.memory.core import Memory
from emily.memory.store import PgStore
from tests.memory.helpers import T0

pytestmark = pytest.mark.slow

TEXTS = [
    "My dog is called Rex and he loves the beach",
    "I work as a nurse at the city hospital",
    "My sister lives in Lisbon with her two cats",
    "I am allergic to peanuts",
    "What is my dog called?",
    "Remind me to water the plants tomorrow",
]
ACTS = ["statement", "statement", "statement", "statement", "question", "command"]


def make(cfg: MemoryConfig, dsn: str, embedder: Embedder) -> Memory:
    memory = Memory(cfg, PgStore(dsn, cfg), embedder)
    if memory.indexer is not None:
        assert memory.indexer.ready.wait(60)
    return memory


@pytest.fixture
def cfg(tmp_path: Path) -> MemoryConfig:
    return MemoryConfig(
        state=tmp_path / "memory",
        l0_capacity=64,
        l1_capacity=64,
        l2_capacity=64,
        l2_min_accesses=1,
        hnsw_m=8,
        hnsw_ef_construction=32,
    )


@pytest.fixture
def memory(cfg: MemoryConfig, pg_dsn: str, embedder: Embedder) -> Iterator[Memory]:
    m = make(cfg, pg_dsn, embedder)
    yield m
    m.close()


def two_users(memory: Memory) -> dict[str, list[uuid.UUID]]:
    """Ana and Bob each say the same things, Bob with one word changed."""
    ids: dict[str, list[uuid.UUID]] = {}
    for user, change in (("ana", ""), ("bob", " really")):
        eps = [
            EpisodeIn(text=t.replace(" is", change + " is", 1), user=user, act=a, timestamp=T0)  # type: ignore[arg-type]
            for t, a in zip(TEXTS, ACTS, strict=True)
        ]
        ids[user] = memory.store_episodes(StoreRequest(episodes=eps)).ids
    return ids


def recall_ids(memory: Memory, text: str, **kw: object) -> list[uuid.UUID]:
    reply = memory.recall(RecallRequest(text=text, k=10, **kw))  # type: ignore[arg-type]
    return [h.episode.id for h in reply.hits]


@pytest.mark.parametrize("search_index", ["hnswlib", "postgres"])
def test_a_recall_never_returns_another_users_episode(
    search_index: str, tmp_path: Path, pg_dsn: str, embedder: Embedder
) -> None:
    cfg = MemoryConfig(
        state=tmp_path / "memory",
        l0_capacity=64,
        hnsw_m=8,
        hnsw_ef_construction=32,
        search_index=search_index,  # type: ignore[arg-type]
    )
    memory = make(cfg, pg_dsn, embedder)
    try:
        ids = two_users(memory)
        for user, other in (("ana", "bob"), ("bob", "ana")):
            for text in TEXTS:
                got = recall_ids(memory, text, user=user)
                assert set(got) == set(ids[user])  # k=10 > 6: all of the user's, none else
                hybrid = recall_ids(memory, text, user=user, search="hybrid")
                assert set(hybrid) <= set(ids[user]) and hybrid
                assert not set(got + hybrid) & set(ids[other])
            # the episodes are now hot: L0 answers within the scope too
            for _ in range(3):
                recall_ids(memory, TEXTS[0], user=user)
            hot = recall_ids(memory, TEXTS[0], user=user, scope="hot")
            assert hot and set(hot) <= set(ids[user])
        assert recall_ids(memory, TEXTS[0], user="carol") == []
        assert recall_ids(memory, TEXTS[0]) == []  # the default user said nothing
        reqs = [RecallRequest(text=t, k=3, user=u) for t in TEXTS for u in ("ana", "bob")]
        if all(memory.batchable(r) for r in reqs):
            for req, reply in zip(reqs, memory.recall_many(reqs), strict=True):
                assert {h.episode.id for h in reply.hits} <= set(ids[req.user])
                assert [h.episode.id for h in reply.hits] == recall_ids_k(memory, req)
    finally:
        memory.close()


def recall_ids_k(memory: Memory, req: RecallRequest) -> list[uuid.UUID]:
    return [h.episode.id for h in memory.recall(req).hits]


def test_dialogue_fields_persist_and_filter(memory: Memory) -> None:
    ids = two_users(memory)
    question = ids["ana"][4]
    answer = EpisodeIn(
        text="Your dog is called Rex",
        user="ana",
        agent="emily",
        role="assistant",
        act="answer",
        session="conv-1",
        reply_to=question,
    )
    (answer_id,) = memory.store_episodes(StoreRequest(episodes=[answer])).ids
    said = RecallFilters(acts=["statement", "answer"])
    for _ in range(2):  # from Postgres, then from the cache tiers
        reply = memory.recall(
            RecallRequest(text="what is my dog called", k=10, user="ana", filters=said)
        )
        acts = {h.episode.act for h in reply.hits}
        assert acts <= {"statement", "answer"} and len(reply.hits) == 5
        ep = next(h.episode for h in reply.hits if h.episode.id == answer_id)
        assert (ep.role, ep.act, ep.agent, ep.session, ep.reply_to) == (
            "assistant",
            "answer",
            "emily",
            "conv-1",
            question,
        )
        assert ep.user == "ana" and ep.repeats == 1
    only = recall_ids(memory, "dog", user="ana", filters=RecallFilters(session="conv-1"))
    assert only == [answer_id]
    assert recall_ids(memory, "dog", user="ana", agent="emily") == [answer_id]
    roles = RecallFilters(roles=["assistant"])
    assert recall_ids(memory, "dog", user="bob", filters=roles) == []
    stored = memory.store.fetch([answer_id])[answer_id]
    assert (stored.user, stored.role, stored.reply_to) == ("ana", "assistant", question)


def test_scopes_survive_a_restart_of_the_index(
    cfg: MemoryConfig, pg_dsn: str, embedder: Embedder
) -> None:
    memory = make(cfg, pg_dsn, embedder)
    ids = two_users(memory)
    memory.close()  # saves the in-process index; scopes are read back from Postgres
    memory = make(cfg, pg_dsn, embedder)
    try:
        assert memory.indexer is not None and memory.indexer.index.scopes.count("bob") == 6
        assert set(recall_ids(memory, TEXTS[2], user="bob")) == set(ids["bob"])
    finally:
        memory.close()


def test_old_rows_read_as_the_default_users_statements(
    pg_dsn: str, embedder: Embedder, tmp_path: Path
) -> None:
    """Rows stored before migration 0003 get its defaults."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        from emily.memory.migrate import migrations

        for mig in migrations()[:2]:
            conn.execute(mig.sql.encode())
        conn.execute(
            "CREATE TABLE emily_schema_migrations (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute("INSERT INTO emily_schema_migrations VALUES (1, 'vector'), (2, 'episodes')")
        vec = embedder.embed(["an old memory about the lighthouse"])[0].tolist()
        conn.execute(
            "INSERT INTO episodes (id, ts, text, embedding) VALUES (%s, now(), %s, %s::vector)",
            (uuid.uuid4(), "an old memory about the lighthouse", str(vec)),
        )
    cfg = MemoryConfig(state=tmp_path / "memory", hnsw_m=8, hnsw_ef_construction=32)
    memory = make(cfg, pg_dsn, embedder)
    try:
        (hit,) = memory.recall(RecallRequest(text="lighthouse", k=3)).hits
        ep = hit.episode
        assert (ep.user, ep.role, ep.act, ep.repeats, ep.session) == (
            "default",
            "user",
            "statement",
            1,
            None,
        )
        assert memory.recall(RecallRequest(text="lighthouse", k=3, user="ana")).hits == []
    finally:
        memory.close()


NAMES = ["Kowalski", "Nowakowski", "Lewandowski", "Jankowski", "Zielinski", "Dabrowski"]
JOBS = ["dentist", "landlord", "coach", "neighbour", "boss", "plumber"]
NAMES += ["Kaminski", "Szymanski", "Wisniewski", "Kozlowski", "Grabowski", "Mazur"]
JOBS += ["accountant", "teacher", "doctor", "lawyer", "barber", "mechanic"]


def test_hybrid_ranks_a_rare_proper_noun_that_vector_search_ranks_poorly(memory: Memory) -> None:
    # "X is my <job>" is what "who is X" looks like to MiniLM; the one episode that
    # names Wojciechowski says so in passing, in a sentence about something else
    fillers = [f"{n} is my {j}" for n, j in zip(NAMES, JOBS, strict=True)]
    target = (
        "We stayed home all weekend playing board games while it rained, and in the "
        "evening Wojciechowski dropped off a parcel"
    )
    eps = [EpisodeIn(text=t, user="ana") for t in [*fillers, target]]
    target_id = memory.store_episodes(StoreRequest(episodes=eps)).ids[-1]
    query = "who is Wojciechowski"
    vector = memory.recall(RecallRequest(text=query, k=10, user="ana"))
    v_ids = [h.episode.id for h in vector.hits]
    assert target_id not in v_ids[:3], "vector search alone ranks the name poorly"
    hybrid = memory.recall(RecallRequest(text=query, k=10, user="ana", search="hybrid"))
    top = hybrid.hits[0]
    assert top.episode.id == target_id, "the full-text match ranks first in hybrid"
    assert top.fused is not None and top.fused > 1 / 61  # found by two sources
    assert all(h.fused is None for h in vector.hits)
    assert [h.fused for h in hybrid.hits] == sorted((h.fused for h in hybrid.hits), reverse=True)
    if target_id in v_ids:  # Hit.score stays the cosine similarity
        assert abs(top.score - vector.hits[v_ids.index(target_id)].score) < 1e-4
    # the same words in another user's memory are not candidates
    memory.store_episodes(StoreRequest(episodes=[EpisodeIn(text=target, user="bob")]))
    again = memory.recall(RecallRequest(text=query, k=10, user="ana", search="hybrid"))
    assert {h.episode.user for h in again.hits} == {"ana"}
    assert memory.recall(RecallRequest(text=query, k=5, user="carol", search="hybrid")).hits == []


def test_hybrid_respects_filters(memory: Memory) -> None:
    ids = two_users(memory)
    said = RecallFilters(acts=["statement"])
    reply = memory.recall(
        RecallRequest(text="what is my dog called", k=10, user="ana", search="hybrid", filters=said)
    )
    assert {h.episode.id for h in reply.hits} == set(ids["ana"][:4])


def test_hybrid_fuses_the_fact_graph_within_the_scope(memory: Memory) -> None:
    from emily.memory.consolidate import Consolidator
    from emily.memory.hybrid import graph_candidates

    said = "My sister Ana lives in Paris"
    fillers = [f"{n} is my {j}" for n, j in zip(NAMES, JOBS, strict=True)]
    ids = {}
    for user in ("ana", "bob"):
        eps = [EpisodeIn(text=t, user=user) for t in [said, *fillers]]
        ids[user] = memory.store_episodes(StoreRequest(episodes=eps)).ids[0]
    Consolidator(memory).run()
    query = "where does my sister live"
    assert graph_candidates(memory.store, "ana", query, 10) == [ids["ana"]]
    top = memory.recall(RecallRequest(text=query, k=5, user="ana", search="hybrid")).hits[0]
    assert top.episode.id == ids["ana"]
    # two sources can give at most 2/61: the graph's vote is in the fused score
    assert top.fused is not None and top.fused > 2 / 61
