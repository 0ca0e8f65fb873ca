"""OpenAI request bodies: fuzzed, and translated into the same bus requests Zenoh gets."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from emily.bus.schemas.inference import ChatRequest, GenerateRequest
from emily.inference.openai_schemas import ChatBody, CompletionBody

values = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.lists(st.text(max_size=4), max_size=3)
)
keys = st.sampled_from(
    [
        "prompt",
        "model",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "stop",
        "stream",
        "seed",
        "n",
        "ignore_eos",
        "presence_penalty",
        "repeat_penalty",
        "logprobs",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, values, max_size=8))
def test_any_completion_body_validates_or_names_a_field(body: dict[str, Any]) -> None:
    try:
        req = CompletionBody.model_validate(body).to_bus()
    except ValidationError as exc:
        assert exc.errors() and all(e["loc"] for e in exc.errors())
        return
    assert isinstance(req, GenerateRequest) and req.prompt
    assert req.max_tokens is None or req.max_tokens >= 1


chat_messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["system", "developer", "user", "assistant", "tool"]),
            "content": st.text(max_size=10)
            | st.lists(
                st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=5)}),
                max_size=2,
            ),
        }
    ),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(chat_messages, st.dictionaries(keys.filter(lambda k: k != "prompt"), values, max_size=4))
def test_any_chat_body_validates_or_names_a_field(
    messages: list[dict[str, Any]], extra: dict[str, Any]
) -> None:
    try:
        req = ChatBody.model_validate({"messages": messages, **extra}).to_bus()
    except ValidationError:
        return
    assert isinstance(req, ChatRequest) and len(req.messages) == len(messages) >= 1
    assert all(m.role in ("system", "user", "assistant") for m in req.messages)


def test_translation_keeps_every_setting() -> None:
    body = CompletionBody(
        prompt=["once"],
        model="m",
        max_tokens=5,
        temperature=0.1,
        top_p=0.5,
        top_k=3,
        min_p=0.2,
        repeat_penalty=1.2,
        stop="x",
        stream=True,
        seed=9,
        ignore_eos=True,
    )
    assert body.to_bus() == GenerateRequest(
        prompt="once",
        model="m",
        max_tokens=5,
        temperature=0.1,
        top_p=0.5,
        top_k=3,
        min_p=0.2,
        repeat_penalty=1.2,
        stop=("x",),
        stream=True,
        seed=9,
        ignore_eos=True,
    )
    chat = ChatBody(
        messages=[
            {
                "role": "developer",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ],
        max_completion_tokens=7,
        stream_options={"include_usage": True},
    )
    req = chat.to_bus()
    assert req.messages[0].role == "system" and req.messages[0].content == "ab"
    assert req.max_tokens == 7 and chat.include_usage


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "x", "n": 2},
        {"prompt": "x", "echo": True},
        {"prompt": "x", "suffix": "y"},
        {"prompt": "x", "frequency_penalty": 0.5},
        {"prompt": []},
    ],
)
def test_unsupported_openai_features_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CompletionBody.model_validate(body)
