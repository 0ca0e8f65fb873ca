"""Fuzzing the cognition contract: valid messages round-trip, anything else is a PayloadError."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emily.bus.messages import decode, encode
from emily.bus.schemas.cognition import (
    MAX_TEXT_CHARS,
    ObserveReply,
    ObserveRequest,
    Trace,
    WorkspaceBroadcast,
)
from emily.errors import PayloadError

storable = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(storable, max_size=20),
)
texts = st.text(storable, min_size=1, max_size=200).filter(lambda s: s.strip())
requests = st.builds(
    ObserveRequest,
    text=texts,
    context=st.dictionaries(st.text(storable, min_size=1, max_size=64), scalars, max_size=8),
    allow_llm=st.booleans(),
    max_tokens=st.integers(1, 4096),
)
probs = st.floats(0.0, 1.0)
items = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["percept", "memory", "goal", "interoception", "reflex"]),
        "content": st.text(max_size=30),
        "salience": st.floats(0.0, 100.0),
        "weight": probs,
    }
)
traces = st.fixed_dictionaries(
    {
        "cycle_id": st.uuids().map(str),
        "tier": st.sampled_from(["reflex", "memory", "deliberation", "clarify"]),
        "policy": st.sampled_from(["reflex", "recall", "deliberate", "clarify"]),
        "reflex": st.fixed_dictionaries(
            {
                "intent": st.text(max_size=20),
                "confidence": probs,
                "threshold": probs,
                "fired": st.booleans(),
                "stage": st.sampled_from(["ngrams", "minilm"]),
            }
        ),
        "workspace": st.lists(items, max_size=7),
        "policies": st.lists(
            st.fixed_dictionaries(
                {
                    "policy": st.sampled_from(["reflex", "recall", "deliberate", "clarify"]),
                    "G": st.floats(-1e6, 1e6),
                    "probability": probs,
                }
            ),
            max_size=4,
        ),
        "need": st.dictionaries(st.sampled_from(["reflex", "memory"]), probs),
        "memories": st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.uuids().map(str),
                    "text": st.text(max_size=20),
                    "score": st.floats(-1, 1),
                    "tier": st.just("L1"),
                }
            ),
            max_size=3,
        ),
        "latencies_ms": st.dictionaries(
            st.sampled_from(["reflex", "embed", "workspace", "policy", "recall", "total"]),
            st.floats(0.0, 1e5),
        ),
        "missing": st.lists(st.sampled_from(["memory", "inference", "embeddings"]), unique=True),
        "notes": st.lists(st.text(max_size=20), max_size=3),
        "allostasis": st.dictionaries(st.sampled_from(["arousal", "load"]), probs),
        "gamma": st.floats(0.1, 100.0),
        "episode": st.sampled_from(["stored", "queued", "skipped"]),
    }
)


@settings(max_examples=100, deadline=None)
@given(requests)
def test_requests_round_trip(req: ObserveRequest) -> None:
    assert decode(ObserveRequest, encode(req)) == req


@settings(max_examples=60, deadline=None)
@given(traces, st.sampled_from(["reply", "recall", "deliberate", "clarify"]), st.text(max_size=50))
def test_replies_round_trip(trace: dict[str, object], action: str, response: str) -> None:
    reply = ObserveReply.model_validate({"action": action, "response": response, "trace": trace})
    assert decode(ObserveReply, encode(reply)) == reply
    assert isinstance(reply.trace, Trace)


@settings(max_examples=40, deadline=None)
@given(st.lists(items, max_size=7), st.integers(0, 10**9), st.booleans())
def test_broadcasts_round_trip(its: list[dict[str, object]], cycle: int, ignited: bool) -> None:
    msg = WorkspaceBroadcast.model_validate(
        {"cycle": cycle, "ignited": ignited, "items": its, "cycle_id": str(uuid.uuid4())}
    )
    assert decode(WorkspaceBroadcast, encode(msg)) == msg


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.dictionaries(st.text(max_size=10), scalars)))
def test_arbitrary_payloads_raise_only_payload_error(payload: bytes | dict[str, object]) -> None:
    try:
        got = decode(ObserveRequest, payload)
    except PayloadError:
        return
    assert got.text.strip()  # whatever decodes is a valid request


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "   \n"}, "whitespace"),
        ({"text": "x" * (MAX_TEXT_CHARS + 1)}, "text"),
        ({"text": "hi", "max_tokens": 0}, "max_tokens"),
        ({"text": "hi", "context": {"": 1}}, "context"),
        ({"text": "hi", "context": {"k": [1, 2]}}, "context"),
        ({"text": "hi", "context": {f"k{i}": i for i in range(40)}}, "context"),
        ({"text": "hi", "surprise": 1}, "surprise"),
        ({"text": "hi", "v": 2}, "v"),
        ({}, "text"),
    ],
)
def test_bad_requests_name_the_field(payload: dict[str, object], field: str) -> None:
    with pytest.raises(PayloadError, match=field):
        decode(ObserveRequest, json.dumps(payload).encode())


def test_trace_rejects_nan_and_out_of_range() -> None:
    with pytest.raises(PayloadError, match="gamma"):
        decode(WorkspaceBroadcast, {"cycle": 1, "ignited": True, "items": [], "gamma": 1})
    with pytest.raises(PayloadError, match="weight"):
        decode(
            WorkspaceBroadcast,
            {
                "cycle": 1,
                "ignited": True,
                "items": [{"kind": "goal", "content": "", "salience": 1.0, "weight": 1.5}],
            },
        )


@pytest.mark.parametrize("bad", ["\x00", "\ud800"])
def test_an_observation_memory_could_not_store_is_refused(bad: str) -> None:
    with pytest.raises(PayloadError, match="text"):
        decode(ObserveRequest, {"text": f"hello {bad} there"})
    with pytest.raises(PayloadError, match="context"):
        decode(ObserveRequest, {"text": "hello", "context": {"k": bad}})
