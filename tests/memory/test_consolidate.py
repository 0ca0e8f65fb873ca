"""Consolidation through the running memory service (real Postgres, Zenoh, MiniLM):
statements become facts, questions do not, changed values supersede, repeats merge, a
corrected episode's facts are re-drawn, and the background pass runs on its own."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest

from emily.bus import BusConfig
from emily.bus.endpoints import CONSOLIDATE, FACTS, RECALL, STORE
from emily.bus.schemas.dialogue import Act
from emily.bus.schemas.facts import ConsolidateReply, ConsolidateRequest, Fact, FactsRequest
from emily.bus.schemas.memory import EpisodeIn, RecallRequest, StoreRequest
from emily.cli.main import main
from emily.memory.consolidate import Consolidator, reconsolidate
from emily.memory.facts import drop_sources
from tests.memory.conftest import KEYS, Running
from tests.memory.helpers import T0


def store(
    r: Running, text: str, *, user: str = "ana", act: Act = "statement", hours: int = 0
) -> uuid.UUID:
    ep = EpisodeIn(text=text, user=user, act=act, timestamp=T0 + timedelta(hours=hours))
    return STORE.call(r.client, KEYS, StoreRequest(episodes=[ep]), timeout_s=30).ids[0]


def consolidate(r: Running, user: str | None = None) -> ConsolidateReply:
    return CONSOLIDATE.call(r.client, KEYS, ConsolidateRequest(user=user), timeout_s=60)


def ask(r: Running, text: str, *, user: str = "ana", history: bool = False) -> list[Fact]:
    req = FactsRequest(text=text, user=user, history=history, k=10)
    return FACTS.call(r.client, KEYS, req, timeout_s=30).facts


def test_statements_become_facts_and_a_new_name_supersedes(running: Running) -> None:
    rex = store(running, "My dog is called Rex.")
    store(running, "What is my dog called?", act="question", hours=1)
    reply = consolidate(running)
    assert (reply.episodes, reply.facts_added, reply.facts_superseded) == (1, 1, 0)
    (fact,) = [f for f in ask(running, "What is my dog called?") if f.subject == "dog"]
    assert (fact.value, fact.sources) == ("Rex", [rex])

    max_ = store(running, "my dog is now called Max", hours=2)
    reply = consolidate(running)
    assert (reply.episodes, reply.facts_superseded) == (1, 1)
    current = ask(running, "What is my dog called?")
    assert current[0].value == "Max" and current[0].sources == [max_]
    assert "Rex" not in {f.value for f in current}
    history = {f.value: f for f in ask(running, "What is my dog called?", history=True)}
    assert history["Rex"].valid_to == T0 + timedelta(hours=2)
    assert consolidate(running).episodes == 0  # nothing left to read


def test_another_users_facts_never_appear(running: Running) -> None:
    store(running, "My dog is called Rex.", user="ana")
    store(running, "My dog is called Bolt.", user="rui", hours=1)
    assert consolidate(running, user="rui").episodes == 1  # only rui's
    assert [f.value for f in ask(running, "dog name", user="ana")] == []
    consolidate(running)
    assert [f.value for f in ask(running, "dog name", user="rui", history=True)] == ["Bolt"]
    assert [f.value for f in ask(running, "dog name", user="ana", history=True)] == ["Rex"]


def test_saying_the_same_thing_again_merges(running: Running) -> None:
    first = store(running, "I live in Lisbon.")
    consolidate(running)
    again = store(running, "I live in Lisbon.", hours=3)
    other = store(running, "My favourite colour is blue.", hours=4)
    reply = consolidate(running)
    assert (reply.merged, reply.facts_reinforced, reply.facts_added) == (1, 1, 1)
    hits = RECALL.call(
        running.client, KEYS, RecallRequest(text="I live in Lisbon", user="ana", k=5), timeout_s=30
    ).hits
    ids = [h.episode.id for h in hits]
    assert first in ids and other in ids and again not in ids
    kept = next(h.episode for h in hits if h.episode.id == first)
    assert (kept.repeats, kept.last_seen) == (2, T0 + timedelta(hours=3))
    (fact,) = [f for f in ask(running, "where do I live") if f.relation == "lives_in"]
    assert (fact.count, fact.sources) == (2, [first])


def test_a_corrected_statement_gets_its_facts_again(running: Running) -> None:
    ep = store(running, "My cat is called Tom.")
    consolidate(running)
    memory = running.service.memory
    with memory.store.connection() as conn, conn.transaction():
        conn.execute("UPDATE episodes SET text = 'My cat is called Tim.' WHERE id = %s", (ep,))
        drop_sources(conn, [ep])
        rec = memory.store.fetch([ep], conn=conn)[ep]
        assert reconsolidate(memory, conn, [rec]) == 1
    names = [f.value for f in ask(running, "what is my cat called", history=True)]
    assert names == ["Tim"]


@pytest.mark.parametrize("interval_s", [0.2])
def test_the_background_pass_runs_on_its_own(running: Running, interval_s: float) -> None:
    consolidator = Consolidator(running.service.memory)
    consolidator.start(interval_s)
    try:
        store(running, "I work at Siemens.")
        while not ask(running, "where do I work"):
            time.sleep(0.1)
    finally:
        consolidator.close()
    assert ask(running, "where do I work")[0].value == "Siemens"


def test_cli_consolidate_and_facts(
    running: Running,
    bus_configs: tuple[BusConfig, BusConfig],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EMILY_BUS__NODE", "test")
    monkeypatch.setenv("EMILY_BUS__CONNECT", bus_configs[0].listen[0])
    store(running, "I live in Lisbon.", user="default")
    store(running, "I moved to Porto.", user="default", hours=1)
    assert main(["memory", "consolidate"]) == 0
    assert "read 2 statements: 2 facts added (1 superseding" in capsys.readouterr().out
    assert main(["memory", "facts", "where do I live"]) == 0
    out = capsys.readouterr().out
    assert "me lives_in = Porto" in out and "Lisbon" not in out
    assert main(["memory", "facts", "--relation", "lives_in", "--history", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["facts"]
    assert {f["value"] for f in got} == {"Lisbon", "Porto"}
    assert main(["memory", "facts"]) == 1  # nothing to match
    assert "give text, subject or relation" in capsys.readouterr().err


def test_a_close_statement_with_news_is_not_merged(running: Running) -> None:
    memory = running.service.memory
    loose = Consolidator(memory, merge_threshold=0.5)  # every pair here is that close
    store(running, "My dog is called Rex.")
    loose.run()
    store(running, "My dog is called Max.", hours=1)
    store(running, "my dog is called max", hours=2)
    reply = loose.run()
    assert (reply.merged, reply.facts_superseded, reply.facts_reinforced) == (1, 1, 1)
    (fact,) = ask(running, "what is my dog called")
    assert (fact.value, fact.count) == ("Max", 2)
