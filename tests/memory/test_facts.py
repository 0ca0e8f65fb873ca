"""The fact store on a real Postgres: supersession, reinforcement, scope, the hybrid
query with MiniLM, and what forgetting a source does."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from emily.bus.schemas.dialogue import DEFAULT_USER
from emily.bus.schemas.facts import FactsRequest
from emily.embed import Embedder
from emily.memory import facts
from emily.memory.config import MemoryConfig
from emily.memory.extract import ME, Triple
from emily.memory.store import PgStore
from tests.memory.helpers import T0
from tests.memory.said import apply_said


@pytest.fixture
def store(pg_dsn: str, tmp_path: Path) -> Iterator[PgStore]:
    s = PgStore(pg_dsn, MemoryConfig(state=tmp_path / "memory", hnsw_m=8))
    yield s
    s.close()


def say(
    store: PgStore, embedder: Embedder, text: str, *, user: str = DEFAULT_USER, hours: int = 0
) -> uuid.UUID:
    """Apply the facts of ``text`` as said by ``user`` at ``T0 + hours``, each with the
    MiniLM vector of its fact text; its episode id."""
    return apply_said(
        store,
        text,
        user=user,
        hours=hours,
        embed=lambda t: embedder.embed([facts.fact_text(t.subject, t.relation, t.value)])[0],
    )


def ask(store: PgStore, embedder: Embedder, text: str, **kw: object) -> list[facts.Fact]:
    return facts.answer(store, embedder, FactsRequest(text=text, **kw)).facts  # type: ignore[arg-type]


def test_a_new_value_supersedes_and_the_old_one_is_history(
    store: PgStore, embedder: Embedder
) -> None:
    first = say(store, embedder, "My dog is called Rex.")
    second = say(store, embedder, "My dog is now called Max.", hours=5)
    current = ask(store, embedder, "What is my dog called?")
    assert current[0].value == "Max" and current[0].current
    assert current[0].sources == [second]
    assert all(f.value != "Rex" for f in current)
    history = ask(store, embedder, "What is my dog called?", history=True)
    rex = next(f for f in history if f.value == "Rex")
    assert rex.sources == [first]
    assert rex.valid_to == T0 + timedelta(hours=5) == current[0].valid_from


def test_the_same_value_again_reinforces(store: PgStore, embedder: Embedder) -> None:
    say(store, embedder, "I live in Lisbon")
    say(store, embedder, "I live in lisbon.", hours=2)
    (fact,) = facts.answer(
        store, embedder, FactsRequest(subject=ME, relation="lives_in", history=True)
    ).facts
    assert (fact.count, fact.last_seen) == (2, T0 + timedelta(hours=2))
    assert len(fact.sources) == 2


def test_multi_valued_relations_keep_every_value(store: PgStore, embedder: Embedder) -> None:
    say(store, embedder, "I'm allergic to peanuts")
    say(store, embedder, "I am allergic to cats", hours=1)
    got = facts.answer(store, embedder, FactsRequest(relation="allergic_to")).facts
    assert {f.value for f in got} == {"peanuts", "cats"}


def test_a_late_older_statement_does_not_supersede(store: PgStore, embedder: Embedder) -> None:
    say(store, embedder, "I work at Siemens", hours=10)
    say(store, embedder, "I work at Bosch", hours=1)  # said earlier, consolidated later
    got = facts.answer(store, embedder, FactsRequest(relation="works_at", history=True)).facts
    by_value = {f.value: f for f in got}
    assert by_value["Siemens"].current
    assert by_value["Bosch"].valid_to == T0 + timedelta(hours=10)


def test_another_users_facts_never_appear(store: PgStore, embedder: Embedder) -> None:
    say(store, embedder, "My dog is called Rex.", user="ana")
    say(store, embedder, "My dog is called Bolt.", user="rui")
    for history in (False, True):
        got = ask(store, embedder, "what is my dog called", user="rui", history=history, k=20)
        assert [f.value for f in got] == ["Bolt"]
        assert all(f.user == "rui" for f in got)


def test_hybrid_query_finds_by_meaning_words_and_graph(store: PgStore, embedder: Embedder) -> None:
    say(store, embedder, "My sister Ana lives in Paris.")
    say(store, embedder, "I work at Siemens.", hours=1)
    say(store, embedder, "My favourite colour is blue.", hours=2)
    where = ask(store, embedder, "Where does Ana live?", k=2)
    assert where[0].value == "Paris" and where[0].score is not None
    job = ask(store, embedder, "what is my employer", k=1)
    assert job[0].value == "Siemens"
    colour = ask(store, embedder, "which colour do I like best", k=1)
    assert colour[0].value == "blue"


def test_forgetting_the_only_source_deletes_and_restores_the_older_value(
    store: PgStore, embedder: Embedder
) -> None:
    say(store, embedder, "My dog is called Rex.")
    wrong = say(store, embedder, "My dog is now called Max.", hours=5)
    with store.connection() as conn, conn.transaction():
        assert facts.drop_sources(conn, [wrong]) == 1
    (fact,) = facts.answer(store, embedder, FactsRequest(subject="dog", history=True)).facts
    assert (fact.value, fact.valid_to) == ("Rex", None)
    with store.connection() as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM entities").fetchall()}
    assert "max" not in names and "rex" in names


def test_forgetting_one_of_two_sources_keeps_the_fact(store: PgStore, embedder: Embedder) -> None:
    first = say(store, embedder, "I live in Lisbon")
    second = say(store, embedder, "I live in Lisbon", hours=1)
    with store.connection() as conn, conn.transaction():
        assert facts.drop_sources(conn, [first]) == 0
    (fact,) = facts.answer(store, embedder, FactsRequest(relation="lives_in")).facts
    assert (fact.count, fact.sources) == (1, [second])


def test_forgetting_the_middle_of_a_chain_joins_its_ends(
    store: PgStore, embedder: Embedder
) -> None:
    say(store, embedder, "I live in Lisbon")
    middle = say(store, embedder, "I moved to Porto", hours=1)
    say(store, embedder, "I moved to Faro", hours=2)
    with store.connection() as conn, conn.transaction():
        facts.drop_sources(conn, [middle])
    got = facts.answer(store, embedder, FactsRequest(relation="lives_in", history=True)).facts
    by_value = {f.value: f for f in got}
    assert set(by_value) == {"Lisbon", "Faro"}
    assert by_value["Lisbon"].valid_to == by_value["Faro"].valid_from
    assert by_value["Faro"].current
    # and the chain still holds: forgetting Faro now makes Lisbon current
    with store.connection() as conn, conn.transaction():
        facts.drop_sources(conn, by_value["Faro"].sources)
    (left,) = facts.answer(store, embedder, FactsRequest(relation="lives_in")).facts
    assert left.value == "Lisbon"


def test_a_request_needs_something_to_match() -> None:
    with pytest.raises(ValueError, match="give text, subject or relation"):
        FactsRequest()
    assert Triple("a", "b", "c").key() == ("a", "b", "c")
