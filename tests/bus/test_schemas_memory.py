"""Fuzzing the memory contract: every schema round-trips, and bad payloads name the field."""

from __future__ import annotations

import contextlib
import math
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emily.bus.messages import decode, encode
from emily.bus.schemas.memory import (
    EMBED_DIM,
    MAX_BATCH,
    MAX_OPS,
    MAX_TEXT_CHARS,
    Affect,
    Episode,
    EpisodeIn,
    Hit,
    IndexStatus,
    MemoryOperation,
    MemoryOperations,
    PoolStats,
    RecallFilters,
    RecallReply,
    RecallRequest,
    StatsReply,
    StoreReply,
    StoreRequest,
    TierStats,
)
from emily.errors import PayloadError

unit = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)
finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
vectors = st.lists(finite, min_size=EMBED_DIM, max_size=EMBED_DIM)
times = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
# what Postgres can store: no NUL, no lone surrogate (those are refused: tested below)
storable = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
texts = st.text(storable, min_size=1, max_size=200)
ctx_values = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), finite, texts)
contexts = st.dictionaries(st.text(storable, min_size=1, max_size=64), ctx_values, max_size=8)
affects = st.builds(Affect, valence=unit, arousal=unit, dominance=unit)
episodes_in = st.builds(
    EpisodeIn,
    id=st.one_of(st.none(), st.uuids()),
    text=texts,
    timestamp=st.one_of(st.none(), times),
    embedding=st.one_of(st.none(), vectors),
    affect=affects,
    context=contexts,
    source=st.text(storable, max_size=128),
)
episodes = st.builds(
    Episode,
    id=st.uuids(),
    text=texts,
    timestamp=times,
    affect=affects,
    context=contexts,
    source=st.text(max_size=20),
)
tiers = st.sampled_from(["L0", "L1", "L2", "L3"])


@st.composite
def filters(draw: st.DrawFn) -> RecallFilters:
    since = draw(st.one_of(st.none(), times))
    until = draw(st.one_of(st.none(), times))
    if since is not None and until is not None and since >= until:
        since, until = None, until
    return RecallFilters(
        since=since,
        until=until,
        min_valence=draw(st.one_of(st.none(), unit)),
        max_arousal=draw(st.one_of(st.none(), unit)),
        context=draw(contexts),
        source=draw(st.one_of(st.none(), st.text(max_size=10))),
    )


@st.composite
def recall_requests(draw: st.DrawFn) -> RecallRequest:
    use_text = draw(st.booleans())
    return RecallRequest(
        text=draw(texts) if use_text else None,
        vector=None if use_text else draw(vectors),
        k=draw(st.integers(1, 100)),
        filters=draw(filters()),
        scope=draw(st.sampled_from(["all", "hot"])),
        ef_search=draw(st.one_of(st.none(), st.integers(1, 1000))),
    )


operations = st.builds(
    MemoryOperation,
    op=st.sampled_from(["store", "promote", "demote", "hit", "miss"]),
    episode_id=st.one_of(st.none(), st.uuids()),
    from_tier=st.one_of(st.none(), tiers),
    to_tier=st.one_of(st.none(), tiers),
    count=st.integers(1, 10**6),
    at=times,
)

messages = st.one_of(
    st.builds(StoreRequest, episodes=st.lists(episodes_in, min_size=1, max_size=3)),
    st.builds(StoreReply, ids=st.lists(st.uuids()), durable=st.booleans(), queued=st.integers(0)),
    recall_requests(),
    st.builds(
        RecallReply,
        hits=st.lists(st.builds(Hit, episode=episodes, score=unit, tier=tiers), max_size=3),
        took_ms=st.floats(0, 1e6),
    ),
    st.builds(
        StatsReply,
        episodes=st.integers(0),
        tiers=st.lists(
            st.builds(
                TierStats,
                tier=tiers,
                size=st.integers(0),
                capacity=st.one_of(st.none(), st.integers(0)),
                hits=st.integers(0),
                hit_rate=st.floats(0, 1),
            ),
            max_size=4,
        ),
        misses=st.integers(0),
        outbox_pending=st.integers(0),
        pool=st.builds(
            PoolStats, **{f: st.integers(0, 99) for f in PoolStats.model_fields if f != "v"}
        ),
        index=st.builds(
            IndexStatus,
            m=st.integers(2, 100),
            ef_construction=st.integers(4, 1000),
            ef_search=st.integers(1, 1000),
            iterative_scan=st.sampled_from(["off", "relaxed_order"]),
            max_scan_tuples=st.integers(1),
            storage=st.sampled_from(["vector", "halfvec"]),
            search_index=st.sampled_from(["hnswlib", "postgres"]),
            indexed=st.integers(0),
            index_ready=st.booleans(),
        ),
        device=st.text(max_size=20),
    ),
    operations,
    st.builds(MemoryOperations, ops=st.lists(operations, min_size=1, max_size=5)),
)


@settings(max_examples=150, deadline=None)
@given(messages)
def test_every_message_round_trips(message: Any) -> None:
    assert decode(type(message), encode(message)) == message


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2 * EMBED_DIM).filter(lambda n: n != EMBED_DIM))
def test_wrong_dimension_is_named(n: int) -> None:
    with pytest.raises(PayloadError, match="vector"):
        decode(RecallRequest, {"vector": [0.1] * n})


@settings(max_examples=50, deadline=None)
@given(st.sampled_from([math.nan, math.inf, -math.inf]), st.integers(0, EMBED_DIM - 1))
def test_non_finite_embedding_is_named(bad: float, at: int) -> None:
    vec = [0.0] * EMBED_DIM
    vec[at] = bad
    payload = {"episodes": [{"text": "x", "embedding": vec}]}
    # the JSON encoder writes NaN/Infinity tokens, which Python's json accepts on decode
    with pytest.raises(PayloadError, match=f"episodes.0.embedding.{at}"):
        decode(StoreRequest, payload)


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=30).filter(lambda s: s not in RecallFilters.model_fields))
def test_unknown_filter_is_named(name: str) -> None:
    with pytest.raises(PayloadError, match="Extra inputs"):
        decode(RecallRequest, {"text": "q", "filters": {name: 1}})


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_bytes_are_a_payload_error(raw: bytes) -> None:
    for model in (StoreRequest, RecallRequest):
        with contextlib.suppress(PayloadError):
            decode(model, raw)


def test_oversize_text_and_batch_are_named() -> None:
    with pytest.raises(PayloadError, match=r"episodes\.0\.text"):
        decode(StoreRequest, {"episodes": [{"text": "x" * (MAX_TEXT_CHARS + 1)}]})
    with pytest.raises(PayloadError, match="episodes"):
        decode(StoreRequest, {"episodes": [{"text": "x"}] * (MAX_BATCH + 1)})
    with pytest.raises(PayloadError, match="episodes"):
        decode(StoreRequest, {"episodes": []})


def test_recall_needs_exactly_one_query_and_ordered_window() -> None:
    with pytest.raises(PayloadError, match="exactly one"):
        decode(RecallRequest, {"k": 3})
    with pytest.raises(PayloadError, match="exactly one"):
        decode(RecallRequest, {"text": "a", "vector": [0.0] * EMBED_DIM})
    with pytest.raises(PayloadError, match="since must be earlier"):
        decode(
            RecallRequest, {"text": "a", "filters": {"since": "2025-01-02", "until": "2025-01-01"}}
        )
    with pytest.raises(PayloadError, match="k"):
        decode(RecallRequest, {"text": "a", "k": 0})


def test_naive_times_are_utc_and_affect_is_bounded() -> None:
    ep = decode(EpisodeIn, {"text": "a", "timestamp": "2025-03-01T10:00:00"})
    assert ep.timestamp == datetime(2025, 3, 1, 10, tzinfo=UTC)
    with pytest.raises(PayloadError, match=r"affect\.valence"):
        decode(EpisodeIn, {"text": "a", "affect": {"valence": 1.5}})
    assert RecallFilters().empty and not RecallFilters(source="x").empty
    assert decode(StoreReply, {"ids": [str(uuid.UUID(int=1))], "durable": True, "queued": 0})


def test_an_empty_or_oversize_operations_batch_is_named() -> None:
    op = MemoryOperation(op="miss")
    with pytest.raises(PayloadError, match="ops"):
        decode(MemoryOperations, '{"v": 1, "ops": []}')
    too_many = MemoryOperations.model_construct(ops=[op] * (MAX_OPS + 1))
    with pytest.raises(PayloadError, match="ops"):
        decode(MemoryOperations, encode(too_many))


@settings(max_examples=200, deadline=None)
@given(
    episodes_in,
    st.sampled_from(["text", "source", "context"]),
    st.sampled_from(["\x00", "\ud800", "\udfff"]),
    st.integers(0, 50),
)
def test_text_postgres_cannot_store_is_refused_naming_the_field(
    ep: EpisodeIn, field: str, bad: str, at: int
) -> None:
    """A NUL or a lone surrogate anywhere in text, source or a context string is a
    PayloadError that names the field, before anything reaches the store."""
    raw = ep.model_dump(mode="json")
    if field == "context":
        raw["context"] = {**raw["context"], "k": "ok" + bad}
    else:
        value = raw[field] or "x"
        raw[field] = value[:at] + bad + value[at:]
    with pytest.raises(PayloadError, match=field):
        decode(EpisodeIn, raw)
    with pytest.raises(PayloadError, match=re.escape("episodes.0." + field)):
        decode(StoreRequest, {"episodes": [raw]})


def test_context_values_are_bounded() -> None:
    ok = {"text": "t", "context": {"note": "n" * 1024, "big": 2**63 - 1}}
    assert decode(EpisodeIn, ok).context["big"] == 2**63 - 1
    with pytest.raises(PayloadError, match="context"):
        decode(EpisodeIn, {"text": "t", "context": {"note": "n" * 1025}})
    with pytest.raises(PayloadError, match=r"context\.big"):
        decode(EpisodeIn, b'{"text": "t", "context": {"big": ' + b"9" * 400 + b"}}")


def test_affect_bounds_are_rounded_to_the_stored_real_type() -> None:
    """A bound below float32's range (found by fuzzing: Postgres refused it as an
    underflow) becomes the real it compares with."""
    raw = b'{"text": "x", "filters": {"min_valence": 2.2250738585072014e-308}}'
    f = decode(RecallRequest, raw).filters
    assert f.min_valence == 0.0
    assert decode(RecallFilters, {"max_arousal": 0.1}).max_arousal == pytest.approx(0.1, abs=1e-8)
