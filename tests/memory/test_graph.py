"""The entity graph: names found in a text, the recursive-CTE neighbourhood (not walked
through the speaker), and the episodes hybrid recall gets from it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from emily.bus.schemas.memory import EMBED_DIM
from emily.memory import facts, graph
from emily.memory.config import MemoryConfig
from emily.memory.store import PgStore
from tests.memory.said import apply_said


@pytest.fixture
def store(pg_dsn: str, tmp_path: Path) -> Iterator[PgStore]:
    s = PgStore(pg_dsn, MemoryConfig(state=tmp_path / "memory", hnsw_m=8))
    yield s
    s.close()


def say(store: PgStore, text: str, *, user: str = "ana", hours: int = 0) -> uuid.UUID:
    vec = np.zeros(EMBED_DIM, np.float32)
    vec[0] = 1.0  # the graph never reads embeddings
    return apply_said(store, text, user=user, hours=hours, embed=lambda _: vec)


def values(store: PgStore, text: str, **kw: object) -> dict[str, int]:
    with store.connection() as conn:
        near = graph.neighbourhood(conn, "ana", text, limit=50, **kw)  # type: ignore[arg-type]
        found = facts.get(conn, [f for f, _ in near])
    return {found[f].value: hops for f, hops in near}


def test_names_in_a_text() -> None:
    got = graph.names_in("Where does Ana's sister live?")
    assert {"ana", "sister", "ana sister", "where does ana"} <= set(got)
    assert "me" not in graph.names_in("tell me")


def test_neighbourhood_walks_from_a_named_entity(store: PgStore) -> None:
    say(store, "My sister Ana lives in Paris.")
    say(store, "My brother Tiago works at Microsoft.", hours=1)
    assert values(store, "where does Ana live") == {"Ana": 0, "Paris": 1}
    assert values(store, "Ana", depth=0) == {"Ana": 0}
    assert values(store, "who is in Paris") == {"Paris": 0, "Ana": 1}


def test_the_speaker_is_not_walked_through(store: PgStore) -> None:
    say(store, "I have a cat named Tom.")
    say(store, "I live in Lisbon.", hours=1)
    got = values(store, "tell me about Tom")
    assert "Lisbon" not in got
    assert got["Tom"] == 0


def test_superseded_facts_only_with_history(store: PgStore) -> None:
    say(store, "My dog is called Rex.")
    say(store, "My dog is called Max.", hours=1)
    assert values(store, "my dog") == {"Max": 0}
    assert values(store, "my dog", history=True) == {"Max": 0, "Rex": 0}


def test_graph_episodes_are_the_sources_nearest_first(store: PgStore) -> None:
    paris = say(store, "My sister Ana lives in Paris.")
    other = say(store, "My sister Ana lives in Paris.", user="rui")
    job = say(store, "I work at Siemens.", hours=1)
    with store.connection() as conn:
        assert graph.graph_episodes(conn, "ana", "What about Ana?", 5) == [paris]
        assert graph.graph_episodes(conn, "ana", "Siemens", 5) == [job]
        assert graph.graph_episodes(conn, "ana", "nothing named here", 5) == []
        assert graph.graph_episodes(conn, "rui", "Ana", 5) == [other]
