"""Forget, correct and export over real Zenoh, Postgres + pgvector and MiniLM."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import zenoh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emily.bus.endpoints import CONSOLIDATE, CORRECT, EVENTS, EXPORT, FACTS, FORGET
from emily.bus.rpc import RequestFailed, wait_for_server
from emily.bus.schemas.facts import ConsolidateRequest, FactsRequest
from emily.bus.schemas.lifecycle import (
    CorrectRequest,
    EventsRequest,
    ExportRequest,
    ForgetRequest,
)
from emily.bus.schemas.memory import EpisodeIn
from emily.embed import Embedder
from emily.ids import uuid7
from emily.memory.record import Record, normalize
from tests.fuzz import SHORT, answered, count, payloads
from tests.memory.conftest import KEYS, Running, start
from tests.memory.test_service import recall, store

pytestmark = pytest.mark.slow
TEXTS = [
    "My dog is called Rex",
    "The cat sleeps on the warm windowsill",
    "We had pasta with tomato sauce for dinner",
    "The train to Berlin was two hours late",
]


def _slots(running: Running) -> bytes:
    """Every byte of L2's files (vectors and records)."""
    l2 = running.service.memory.tiers.l2
    l2.flush()
    return b"".join(p.read_bytes() for p in (running.cfg.root / "l2").iterdir() if p.is_file())


def _warm(running: Running, text: str, times: int = 3) -> None:
    for _ in range(times):
        recall(running.client, text, k=1)


def test_forget_leaves_every_tier_the_index_the_outbox_and_its_facts_across_a_restart(
    running: Running, embedder: Embedder, zenoh_pair: tuple[zenoh.Session, zenoh.Session]
) -> None:
    memory = running.service.memory
    ids = store(running.client, TEXTS).ids
    theirs = store(running.client, [TEXTS[0]], user="bob").ids[0]
    assert memory.indexer is not None and memory.indexer.ready.wait(30)
    _warm(running, "what is my dog called", times=2)  # Rex: L3 -> L2 -> L1
    _warm(running, "the train was late", times=1)  # Berlin: in L2
    assert memory.tiers.tier_of.get(ids[0]) == "L1"
    assert memory.tiers.tier_of.get(ids[3]) == "L2" and b"Berlin" in _slots(running)
    CONSOLIDATE.call(running.client, KEYS, ConsolidateRequest(), timeout_s=60)
    rex = FACTS.call(running.client, KEYS, FactsRequest(subject="dog"), timeout_s=30).facts
    assert [f.value for f in rex] == ["Rex"]
    # a copy still queued for Postgres (stored while it was away)
    queued = Record(
        id=uuid7(),
        ts=rex[0].valid_from,
        text="The train to Munich was cancelled",
        embedding=normalize(embedder.embed(["The train to Munich was cancelled"])[0]),
    )
    memory.outbox.put([queued])
    memory.indexer.save()

    forgot = FORGET.call(
        running.client,
        KEYS,
        ForgetRequest(ids=[ids[0], ids[3], queued.id, theirs]),
        timeout_s=30,
    )
    assert forgot.forgotten == [ids[0], ids[3], queued.id]
    assert forgot.missing == [theirs]  # bob's episode: not the default user's to forget
    assert forgot.facts_removed == 1
    assert memory.store.existing([*ids, theirs]) == {ids[1], ids[2], theirs}
    assert ids[0] not in memory.tiers.tier_of and ids[3] not in memory.tiers.tier_of
    assert b"Berlin" not in _slots(running)  # the slot is wiped, not only freed
    assert ids[0] not in memory.indexer.index and ids[3] not in memory.indexer.index
    assert memory.outbox.ids() == set()
    assert FACTS.call(running.client, KEYS, FactsRequest(subject="dog"), timeout_s=30).facts == []
    memory.tiers.check()

    # restart: L2 files, the saved index and the outbox are read again
    running.service.close()
    running.service = start(running.cfg, running.dsn, embedder, zenoh_pair[0])
    assert wait_for_server(running.client, FORGET.key(KEYS), timeout_s=10)
    memory = running.service.memory
    assert memory.indexer is not None and memory.indexer.ready.wait(30)
    memory.drain_outbox()
    for text in ("what is my dog called", "the train was late", "train to Munich"):
        got = recall(running.client, text, k=5)
        assert not {h.episode.id for h in got.hits} & {ids[0], ids[3], queued.id}
    assert memory.store.existing([ids[0], ids[3], queued.id]) == set()
    assert not {ids[0], ids[3]} & set(memory.tiers.tier_of)
    # a consolidation after it draws nothing from the forgotten statement
    CONSOLIDATE.call(running.client, KEYS, ConsolidateRequest(), timeout_s=60)
    history = FactsRequest(subject="dog", history=True)
    assert FACTS.call(running.client, KEYS, history, timeout_s=30).facts == []
    bob = FactsRequest(subject="dog", user="bob")
    assert [f.value for f in FACTS.call(running.client, KEYS, bob, timeout_s=30).facts] == ["Rex"]


def test_forget_by_match_is_scoped_and_a_dry_run_changes_nothing(running: Running) -> None:
    memory = running.service.memory
    mine = store(
        running.client,
        ["My PASSWORD is hunter2", "the wifi password is on the fridge", "Lunch at noon"],
        context={"media_sha256": "a" * 64},
    ).ids
    other = store(running.client, ["my bank password is 1234"], user="bob").ids
    seen = EVENTS.call(running.client, KEYS, EventsRequest(), timeout_s=10).last

    dry = FORGET.call(
        running.client, KEYS, ForgetRequest(match="password", dry_run=True), timeout_s=30
    )
    assert dry.dry_run and sorted(dry.forgotten) == sorted(mine[:2])
    assert memory.store.existing(mine) == set(mine)
    assert EVENTS.call(running.client, KEYS, EventsRequest(since=seen), timeout_s=10).events == []

    done = FORGET.call(running.client, KEYS, ForgetRequest(match="Password"), timeout_s=30)
    assert sorted(done.forgotten) == sorted(mine[:2]) and not done.dry_run
    assert memory.store.existing([*mine, *other]) == {mine[2], other[0]}
    logged = EVENTS.call(running.client, KEYS, EventsRequest(since=seen), timeout_s=10).events
    forgets = [e for e in logged if e.op == "forget"]
    assert {e.episode_id for e in forgets} == set(mine[:2])
    # the third episode still names the same media: it is not orphaned
    assert all(e.detail == {"media_sha256": "a" * 64, "media_orphaned": False} for e in forgets)
    last = FORGET.call(running.client, KEYS, ForgetRequest(ids=[mine[2]]), timeout_s=30)
    assert last.forgotten == [mine[2]]
    tail = EVENTS.call(running.client, KEYS, EventsRequest(since=logged[-1].seq), timeout_s=10)
    assert [e.detail for e in tail.events if e.op == "forget"] == [
        {"media_sha256": "a" * 64, "media_orphaned": True}
    ]
    again = FORGET.call(running.client, KEYS, ForgetRequest(ids=[mine[2]]), timeout_s=30)
    assert again.forgotten == [] and again.missing == [mine[2]]


def test_correct_replaces_text_everywhere_and_redraws_its_facts(
    running: Running, embedder: Embedder
) -> None:
    memory = running.service.memory
    ids = store(running.client, TEXTS).ids
    assert memory.indexer is not None and memory.indexer.ready.wait(30)
    _warm(running, "what is my dog called", times=2)
    assert memory.tiers.tier_of.get(ids[0]) == "L1"
    CONSOLIDATE.call(running.client, KEYS, ConsolidateRequest(), timeout_s=60)

    fixed = CORRECT.call(
        running.client, KEYS, CorrectRequest(id=ids[0], text="My dog is called Max"), timeout_s=30
    )
    assert fixed.episode.text == "My dog is called Max" and fixed.episode.id == ids[0]
    assert [(f.subject, f.value, f.current) for f in fixed.facts] == [("dog", "Max", True)]
    history = FactsRequest(subject="dog", history=True)
    current = FACTS.call(running.client, KEYS, history, timeout_s=30)
    assert [f.value for f in current.facts] == ["Max"]  # Rex had no other source
    hit = recall(running.client, "what is my dog called", k=1).hits[0]
    assert hit.episode.text == "My dog is called Max" and hit.tier == "L1"
    assert memory.store.fetch([ids[0]])[ids[0]].text == "My dog is called Max"
    want = normalize(embedder.embed(["My dog is called Max"])[0])
    label = memory.indexer.index.label_of[ids[0]]
    got = np.asarray(memory.indexer.index._index.get_items([label])[0], dtype=np.float32)
    assert np.allclose(got, want, atol=1e-5)
    memory.tiers.check()

    with pytest.raises(RequestFailed) as err:
        CORRECT.call(
            running.client, KEYS, CorrectRequest(id=ids[1], text="x", user="bob"), timeout_s=30
        )
    assert err.value.reply.code == "not_found" and "bob" in err.value.reply.message
    with pytest.raises(RequestFailed):
        CORRECT.call(running.client, KEYS, CorrectRequest(id=uuid.uuid4(), text="x"), timeout_s=30)


def test_export_pages_through_one_users_episodes_and_facts(running: Running) -> None:
    mine = store(running.client, TEXTS, user="alice", session="s1").ids
    store(running.client, ["My dog is called Bello"], user="bob")
    CONSOLIDATE.call(running.client, KEYS, ConsolidateRequest(), timeout_s=60)
    pages, after = [], None
    while True:
        page = EXPORT.call(
            running.client, KEYS, ExportRequest(user="alice", after=after, limit=3), timeout_s=30
        )
        pages.append(page)
        if page.next is None:
            break
        after = page.next
    assert [len(p.episodes) for p in pages] == [3, 1]
    got = [e for p in pages for e in p.episodes]
    assert [e.id for e in got] == sorted(mine) and {e.user for e in got} == {"alice"}
    assert {e.session for e in got} == {"s1"}
    assert [(f.subject, f.value) for f in pages[0].facts] == [("dog", "Rex")]
    assert pages[1].facts == []
    assert EpisodeIn.model_validate(got[0].model_dump(include=set(EpisodeIn.model_fields)))


def test_1000_fuzzed_corrections_are_answered_and_memory_stays_consistent(
    running: Running,
) -> None:
    """Hostile payloads and valid corrections of stored episodes (of their user, of
    another one, with odd texts): every one answered, never ``internal``."""
    memory = running.service.memory
    ids = [str(k) for k in store(running.client, TEXTS).ids]
    valid = st.fixed_dictionaries(
        {"id": st.sampled_from(ids), "text": st.text(min_size=1, max_size=SHORT)},
        optional={"user": st.sampled_from(["default", "bob"])},
    ).map(lambda obj: json.dumps(obj).encode())
    key = CORRECT.key(KEYS)
    outcomes: list[bool] = []

    @settings(
        max_examples=1000,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(st.one_of(payloads(CorrectRequest), valid))
    def fuzz(payload: bytes) -> None:
        outcomes.append(answered(running.client, key, payload))

    fuzz()
    served, refused = count(outcomes)
    assert served > 0 and refused > 0, (served, refused)
    memory.tiers.check()
    assert memory.store.existing([uuid.UUID(k) for k in ids]) == {uuid.UUID(k) for k in ids}
    fixed = CORRECT.call(
        running.client, KEYS, CorrectRequest(id=ids[0], text="My dog is called Ace"), timeout_s=30
    )
    assert [f.value for f in fixed.facts] == ["Ace"]
