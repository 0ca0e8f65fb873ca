"""The two forms of a recall filter agree: SQL for L3 and Python for the cached tiers.

Hypothesis draws filters; Postgres evaluates :func:`where_clause`, Python evaluates
:func:`matches`, on the same stored records.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from emily.bus.schemas.memory import RecallFilters
from emily.memory.config import MemoryConfig
from emily.memory.embedded import EmbeddedPostgres
from emily.memory.filters import matches, where_clause
from emily.memory.record import Record
from emily.memory.store import PgStore
from tests.fixtures.postgres import _database_dsn
from tests.memory.helpers import T0, records

N = 120
bounds = st.one_of(st.none(), st.sampled_from([-1.0, -0.5, -0.1, 0.0, 0.1, 0.3, 0.5, 0.9, 1.0]))
hours = st.one_of(st.none(), st.integers(-5, N + 5))


@pytest.fixture(scope="module")
def stored(pg_server: EmbeddedPostgres) -> Iterator[tuple[PgStore, list[Record]]]:
    name = f"filters_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    store = PgStore(
        _database_dsn(pg_server.dsn, name), MemoryConfig(hnsw_m=8, hnsw_ef_construction=16)
    )
    roles, acts = ("user", "assistant", "system"), ("statement", "question", "command", "answer")
    recs = [
        replace(
            r,
            user=("ana", "bob", "default")[i % 3],
            agent=None if i % 4 else "bot",
            role=roles[i % 3 if i % 5 else 1],
            act=acts[i % 4],
            session=None if i % 7 == 0 else f"s{i % 5}",
        )
        for i, r in enumerate(records(N, seed=5))
    ]
    store.insert(recs)
    yield store, recs
    store.close()


@st.composite
def filters(draw: st.DrawFn) -> RecallFilters:
    since, until = draw(hours), draw(hours)
    if since is not None and until is not None and since >= until:
        until = None
    context = draw(
        st.sampled_from(
            [
                {},
                {"even": True},
                {"even": False},
                {"i": 7},
                {"i": 7, "even": False},
                {"even": 1},
                {"missing": "x"},
            ]
        )
    )
    return RecallFilters(
        since=None if since is None else T0 + timedelta(hours=since),
        until=None if until is None else T0 + timedelta(hours=until),
        min_valence=draw(bounds),
        max_valence=draw(bounds),
        min_arousal=draw(bounds),
        max_arousal=draw(bounds),
        context=context,
        source=draw(st.sampled_from([None, "test", "other", "nobody"])),
        roles=draw(st.sampled_from([None, ["user"], ["assistant", "system"]])),
        acts=draw(st.sampled_from([None, ["statement"], ["statement", "answer"], ["command"]])),
        session=draw(st.sampled_from([None, "s1", "s4", "nowhere"])),
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    f=filters(),
    user=st.sampled_from([None, "ana", "bob", "default", "nobody"]),
    agent=st.sampled_from([None, "bot", "other"]),
)
def test_sql_and_python_filters_select_the_same_episodes(
    stored: tuple[PgStore, list[Record]], f: RecallFilters, user: str | None, agent: str | None
) -> None:
    store, recs = stored
    where, params = where_clause(f, user, agent)
    with store.connection() as conn:
        rows = conn.execute(sql.SQL("SELECT id FROM episodes ") + where, params).fetchall()
    assert {r[0] for r in rows} == {r.id for r in recs if matches(f, r, user, agent)}
    if user is not None:  # a scope never reaches another user's episodes
        assert all(r.user == user for r in recs if r.id in {row[0] for row in rows})
