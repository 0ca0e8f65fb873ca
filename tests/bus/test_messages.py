"""The message base: every schema is fuzzed, and a bad payload becomes a named error."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field

from emily.bus.messages import ErrorReply, Message, decode, encode
from emily.errors import PayloadError


class Probe(Message):
    text: str = Field(max_length=32)
    k: int = Field(ge=1, le=100)
    score: float = 0.0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(
    text=st.text(max_size=32),
    k=st.integers(1, 100),
    score=st.floats(allow_nan=False, allow_infinity=False),
)
def test_roundtrip(text: str, k: int, score: float) -> None:
    msg = Probe(text=text, k=k, score=score)
    assert decode(Probe, encode(msg)) == msg


@given(obj=json_values)
def test_fuzzed_payloads_validate_or_raise_payload_error(obj: Any) -> None:
    raw = json.dumps(obj, allow_nan=True).encode()
    try:
        got = decode(Probe, raw)
    except PayloadError as exc:
        assert str(exc)
    else:
        assert 1 <= got.k <= 100 and len(got.text) <= 32 and math.isfinite(got.score)


@given(raw=st.binary(max_size=64))
def test_fuzzed_bytes_never_crash(raw: bytes) -> None:
    try:
        decode(ErrorReply, raw)
    except PayloadError as exc:
        assert str(exc)


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"\xff\xfe", "not valid UTF-8 JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"v": 2, "text": "a", "k": 1}', "schema version 2 is not supported"),
        (b'{"text": "a", "k": 0}', "k: Input should be greater than or equal to 1"),
        (b'{"text": "a", "k": 1, "extra": 1}', "extra: Extra inputs are not permitted"),
        (b'{"text": "a", "k": 1, "score": NaN}', "score"),
        (b'{"k": 1}', "text: Field required"),
    ],
)
def test_bad_payload_names_the_field(payload: bytes, needle: str) -> None:
    with pytest.raises(PayloadError, match=needle):
        decode(Probe, payload)


def test_decode_accepts_dicts_and_str() -> None:
    assert decode(Probe, {"text": "a", "k": 2}).k == 2
    assert decode(Probe, '{"text": "a", "k": 3}').k == 3


@given(
    code=st.sampled_from(
        ["bad_request", "busy", "unavailable", "internal", "timeout", "not_found"]
    ),
    message=st.text(max_size=50),
    retry=st.none() | st.floats(0, 60),
)
def test_error_reply_roundtrip(code: str, message: str, retry: float | None) -> None:
    err = ErrorReply(code=code, message=message, retry_after_s=retry)  # type: ignore[arg-type]
    assert decode(ErrorReply, encode(err)) == err
