"""Fuzzing the inference contract: every valid message round-trips, bad ones name the field."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emily.bus.messages import Message, decode, encode
from emily.bus.schemas.inference import (
    CancelReply,
    CancelRequest,
    ChatMessage,
    ChatRequest,
    GenerateRequest,
    GenerationChunk,
    InferenceInfo,
    InfoRequest,
    Usage,
)
from emily.errors import PayloadError

ids = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)
text = st.text(max_size=200)
sampling = {
    "max_tokens": st.none() | st.integers(1, 32768),
    "temperature": st.none() | st.floats(0, 2),
    "top_p": st.none() | st.floats(0, 1, exclude_min=True),
    "top_k": st.none() | st.integers(0, 100_000),
    "min_p": st.none() | st.floats(0, 1),
    "repeat_penalty": st.none() | st.floats(0, 2, exclude_min=True),
    "stop": st.lists(text, max_size=8).map(tuple),
    "seed": st.none() | st.integers(0, 2**32 - 1),
    "ignore_eos": st.booleans(),
}
common = {"model": st.none() | text, "stream": st.booleans(), "request_id": st.none() | ids}
messages = st.builds(
    ChatMessage, role=st.sampled_from(["system", "user", "assistant"]), content=text
)
usage = st.builds(Usage, prompt_tokens=st.integers(0, 10**6), completion_tokens=st.integers(0))
ms = st.none() | st.floats(0, 1e7)

MESSAGES: dict[str, st.SearchStrategy[Message]] = {
    "generate": st.builds(
        GenerateRequest, prompt=st.text(min_size=1, max_size=300), **sampling, **common
    ),
    "chat": st.builds(
        ChatRequest,
        messages=st.lists(messages, min_size=1, max_size=5).map(tuple),
        **sampling,
        **common,
    ),
    "chunk": st.builds(
        GenerationChunk,
        request_id=text,
        model=text,
        index=st.integers(0, 10**6),
        text=text,
        done=st.booleans(),
        finish_reason=st.none() | st.sampled_from(["stop", "length", "cancelled", "timeout"]),
        usage=st.none() | usage,
        ttft_ms=ms,
        latency_ms=ms,
    ),
    "cancel": st.builds(CancelRequest, request_id=ids),
    "cancel_reply": st.builds(CancelReply, request_id=text, cancelled=st.booleans()),
    "info_request": st.just(InfoRequest()),
    "info": st.builds(
        InferenceInfo,
        model=text,
        model_path=text,
        backend=st.sampled_from(["cpu", "cuda", "metal", "vulkan", "other"]),
        device=text,
        gpu_offload_supported=st.booleans(),
        n_gpu_layers=st.integers(-1, 1000),
        n_ctx=st.integers(1, 10**6),
        n_threads=st.integers(1, 512),
        chat_format=st.sampled_from(["template", "fewshot"]),
        queue_size=st.integers(0, 10**4),
        queue_depth=st.integers(0, 10**4),
    ),
}


@pytest.mark.parametrize("name", sorted(MESSAGES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_message_roundtrips(name: str, data: st.DataObject) -> None:
    message = data.draw(MESSAGES[name])
    assert decode(type(message), encode(message)) == message


BAD: list[tuple[type[Message], dict[str, Any], str]] = [
    (GenerateRequest, {"prompt": ""}, "prompt"),
    (GenerateRequest, {"prompt": "x", "max_tokens": 0}, "max_tokens"),
    (GenerateRequest, {"prompt": "x", "temperature": -0.1}, "temperature"),
    (GenerateRequest, {"prompt": "x", "temperature": 2.5}, "temperature"),
    (GenerateRequest, {"prompt": "x", "top_p": 0}, "top_p"),
    (GenerateRequest, {"prompt": "x", "stop": ["a"] * 9}, "stop"),
    (GenerateRequest, {"prompt": "x", "request_id": "has space"}, "request_id"),
    (GenerateRequest, {"prompt": "x", "n": 2}, "n"),
    (ChatRequest, {"messages": []}, "messages"),
    (ChatRequest, {"messages": [{"role": "robot", "content": "x"}]}, "role"),
    (CancelRequest, {"request_id": ""}, "request_id"),
]


@pytest.mark.parametrize(("model", "payload", "field"), BAD)
def test_invalid_payload_names_the_field(
    model: type[Message], payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(PayloadError, match=field):
        decode(model, json.dumps(payload).encode())


def test_nan_temperature_is_rejected() -> None:
    with pytest.raises(PayloadError, match="temperature"):
        decode(GenerateRequest, b'{"prompt": "x", "temperature": NaN}')


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_decoder(raw: bytes) -> None:
    for model in (GenerateRequest, ChatRequest, CancelRequest):
        with contextlib.suppress(PayloadError):
            decode(model, raw)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["prompt", "max_tokens", "top_k", "stop", "v"]),
        st.none() | st.integers() | st.text(max_size=5) | st.floats(),
    )
)
def test_arbitrary_objects_validate_or_raise_payload_error(obj: dict[str, Any]) -> None:
    try:
        req = decode(GenerateRequest, obj)
    except PayloadError:
        return
    assert req.prompt and (req.max_tokens is None or req.max_tokens >= 1)
