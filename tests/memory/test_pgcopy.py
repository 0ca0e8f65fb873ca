"""The NumPy binary COPY encoder, against psycopg's own encoder and a real Postgres."""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pgvector.psycopg import register_vector
from psycopg.copy import Writer
from psycopg.types.json import Jsonb

from emily.bus.schemas.memory import EMBED_DIM
from emily.memory import pgcopy
from emily.memory.config import MemoryConfig
from emily.memory.pgcopy import InvalidRecord
from emily.memory.record import Record
from emily.memory.store import PgStore
from tests.memory.helpers import records

TYPES = [
    *("uuid", "timestamptz", "vector", "float4", "float4", "float4", "text", "text", "jsonb"),
    *("text", "text", "text", "text", "text", "uuid", "int4", "timestamptz"),
]
_compact = functools.partial(json.dumps, separators=(",", ":"), ensure_ascii=False)


class _Collect(Writer):
    """A psycopg COPY writer that keeps the bytes instead of sending them."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: Any) -> None:
        self.data += data


def reference(conn: psycopg.Connection, recs: list[Record]) -> bytes:
    """The same COPY data from psycopg's ``write_row`` (the independent encoder)."""
    out = _Collect()
    with conn.cursor() as cur, psycopg.Copy(cur, binary=True, writer=out) as copy:
        copy.set_types(TYPES)
        for r in recs:
            ctx = Jsonb(r.context, dumps=_compact)
            copy.write_row(
                (
                    *(r.id, r.ts, r.embedding, r.valence, r.arousal, r.dominance),
                    *(r.text, r.source, ctx, r.user, r.agent, r.role, r.act, r.session),
                    *(r.reply_to, r.repeats, r.last_seen),
                )
            )
    return bytes(out.data)


@pytest.fixture
def conn(pg_dsn: str) -> psycopg.Connection:
    PgStore(pg_dsn, MemoryConfig(hnsw_m=8, hnsw_ef_construction=16)).close()  # the schema
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        register_vector(c)
        yield c


def edge_records() -> list[Record]:
    """Every column at its edges: unicode, empty and long text, extreme float32s."""
    f32 = np.finfo(np.float32)
    emb = np.zeros(EMBED_DIM, np.float32)
    emb[:8] = [f32.max, -f32.max, f32.smallest_subnormal, -0.0, f32.tiny, -f32.eps, 1.0, -1.0]
    base = records(4)
    return [
        replace(
            base[0],
            text='naïve café 🐈 \\ "q" \n\t\u200b',
            embedding=emb,
            valence=-1.0,
            arousal=1.0,
            dominance=np.nextafter(np.float32(0), np.float32(1)).item(),
            context={"ключ": "значение", "q": 'a"b\\c\n', "f": 1.5, "n": None, "b": False},
            source="сенсор/🐈",
            user="ana@example.org",
            agent="helper-1",
            role="assistant",
            act="answer",
            session="s:2025-01-01",
            reply_to=uuid.UUID(int=2**128 - 1),
            repeats=2**31 - 1,
            last_seen=datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        ),
        replace(base[1], text="", context={}, source="", ts=datetime(1, 1, 1, tzinfo=UTC)),
        replace(
            base[2],
            text="long " * 2000,  # past the 2 kB TOAST threshold
            ts=datetime(9999, 12, 31, 15, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-8))),
            context={"big": 2**62, "neg": -(2**40), "tiny": 1e-300},
        ),
        replace(base[3], embedding=base[3].embedding.astype(np.float64)),
    ]


def test_encoding_equals_psycopg_write_row_byte_for_byte(conn: psycopg.Connection) -> None:
    recs = edge_records() + records(700)  # more than one chunk
    assert b"".join(pgcopy.stream(recs)) == reference(conn, recs)


_text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))
_value = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | _text
_record = st.builds(
    Record,
    id=st.uuids(),
    ts=st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))])),
    text=_text,
    embedding=arrays(np.float32, EMBED_DIM, elements=st.floats(width=32, allow_nan=False)),
    valence=st.floats(-1, 1, width=32),
    arousal=st.floats(-1, 1, width=32),
    dominance=st.floats(-1, 1, width=32),
    context=st.dictionaries(
        _text, _value | st.floats(allow_nan=False, allow_infinity=False), max_size=4
    ),
    source=_text,
    user=st.sampled_from(["default", "u-1", "ana@x.org"]),
    agent=st.none() | st.just("bot"),
    role=st.sampled_from(["user", "assistant", "system"]),
    act=st.sampled_from(["statement", "question", "command", "answer"]),
    session=st.none() | st.text("ab:-", min_size=1, max_size=8),
    reply_to=st.none() | st.uuids(),
    repeats=st.integers(1, 2**31 - 1),
    last_seen=st.none() | st.datetimes(timezones=st.just(UTC)),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_record, min_size=1, max_size=4))
def test_any_valid_batch_encodes_like_psycopg(conn: psycopg.Connection, recs: list[Record]) -> None:
    finite = all(np.isfinite(r.embedding).all() for r in recs)
    if not finite:  # inf: refused (pgvector refuses it too)
        with pytest.raises(InvalidRecord):
            b"".join(pgcopy.stream(recs))
        return
    assert b"".join(pgcopy.stream(recs)) == reference(conn, recs)


def test_every_column_round_trips_through_postgres(pg_dsn: str) -> None:
    store = PgStore(pg_dsn, MemoryConfig(hnsw_m=8, hnsw_ef_construction=16))
    try:
        recs = edge_records()
        with store.connection() as c, c.transaction():
            pgcopy.copy(c, "episodes", recs)
        got = store.fetch([r.id for r in recs])
    finally:
        store.close()
    for r in recs:
        g = got[r.id]
        assert (g.text, g.ts, g.source, g.context) == (r.text, r.ts, r.source, r.context)
        scope = ("user", "agent", "role", "act", "session", "reply_to", "repeats", "last_seen")
        assert [getattr(g, f) for f in scope] == [getattr(r, f) for f in scope]
        sent = np.asarray(r.embedding, np.float32)
        assert g.embedding.view(np.uint32).tolist() == sent.view(np.uint32).tolist()  # bit-exact
        affect = np.array([g.valence, g.arousal, g.dominance], np.float32)
        assert affect.tolist() == np.array([r.valence, r.arousal, r.dominance], np.float32).tolist()


def _bad(field: str, value: object) -> Record:
    return replace(records(1)[0], **{field: value})


BAD = {
    "nan embedding": _bad("embedding", np.full(EMBED_DIM, np.nan, np.float32)),
    "inf embedding": _bad("embedding", np.full(EMBED_DIM, np.inf, np.float32)),
    "float64 past float32": _bad("embedding", np.full(EMBED_DIM, 1e300)),
    "383 dims": _bad("embedding", np.zeros(EMBED_DIM - 1, np.float32)),
    "valence 1.5": _bad("valence", 1.5),
    "nan arousal": _bad("arousal", float("nan")),
    "naive ts": _bad("ts", datetime(2025, 1, 1)),
    "NUL in text": _bad("text", "a\x00b"),
    "NUL in source": _bad("source", "s\x00"),
    "NUL in context": _bad("context", {"k": "v\x00"}),
    "NaN in context": _bad("context", {"k": float("nan")}),
    "inf in context": _bad("context", {"k": float("inf")}),
    "unserialisable context": _bad("context", {"k": {1, 2}}),
    "surrogate in text": _bad("text", "a\udc80"),
    "surrogate in source": _bad("source", "\ud800"),
    "surrogate in context": _bad("context", {"k\udfff": 1}),
    "unknown role": _bad("role", "narrator"),
    "unknown act": _bad("act", "joke"),
    "NUL in user": _bad("user", "a\x00"),
    "empty user": _bad("user", ""),
    "surrogate in session": _bad("session", "\ud800"),
    "repeats 0": _bad("repeats", 0),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_records_are_refused_naming_the_episode(name: str) -> None:
    good = records(3)
    with pytest.raises(InvalidRecord, match=str(BAD[name].id) if name != "383 dims" else "shape"):
        b"".join(pgcopy.stream([*good, BAD[name]]))


def test_a_bad_record_in_a_later_part_stores_nothing(pg_dsn: str) -> None:
    cfg = MemoryConfig(hnsw_m=8, hnsw_ef_construction=16, copy_part_rows=50)
    store = PgStore(pg_dsn, cfg)
    try:
        recs = records(1200)  # two parts of 600 rows, two chunks each
        for name in ("NUL in text", "nan embedding", "naive ts"):
            bad = [*recs[:1100], replace(BAD[name], id=uuid.uuid4()), *recs[1100:]]
            with pytest.raises(InvalidRecord):
                store.insert(bad)
            assert store.count() == 0
        assert store.insert(recs) == 1200  # the connections are healthy afterwards
    finally:
        store.close()
