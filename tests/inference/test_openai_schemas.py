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
        "frequency_penalty",
        "logit_bias",
        "metadata",
        "store",
        "user",
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
    ("body", "field"),
    [
        ({"prompt": "x", "n": 9}, "n"),
        ({"prompt": "x", "echo": True}, "echo"),
        ({"prompt": "x", "suffix": "y"}, "suffix"),
        ({"prompt": "x", "best_of": 3}, "best_of"),
        ({"prompt": "x", "frequency_penalty": 2.5}, "frequency_penalty"),
        ({"prompt": "x", "logit_bias": {"abc": 1}}, "logit_bias"),
        ({"prompt": "x", "logit_bias": {"12": 101}}, "logit_bias"),
        ({"prompt": "x", "temprature": 0.5}, "temprature"),
        ({"prompt": []}, "prompt"),
    ],
)
def test_unsupported_openai_features_are_refused(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        CompletionBody.model_validate(body)
    assert any(
        field in ".".join(map(str, e["loc"])) or field in e["msg"] for e in info.value.errors()
    )


USER = [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"verbosity": "low"}, "verbosity"),
        ({"tool_choice": "required"}, "tool_choice needs tools"),
        ({"tool_choice": {"type": "function"}}, "tool_choice must be"),
        ({"response_format": {"type": "json_schema"}}, "json_schema object"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"top_logprobs": 21}, "top_logprobs"),
    ],
)
def test_chat_fields_that_would_change_the_output_are_refused_by_name(
    extra: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        ChatBody.model_validate({"messages": USER, **extra})
    text = str(info.value)
    assert field in text


def test_harmless_fields_are_accepted_and_named_as_ignored() -> None:
    body = ChatBody.model_validate(
        {
            "messages": USER,
            "metadata": {"k": "v"},
            "store": False,
            "logit_bias": {},
            "service_tier": "auto",
            "user": "u-1",
            "parallel_tool_calls": True,
            "stream_options": {"include_usage": True, "include_obfuscation": False},
            "modalities": ["text"],
        }
    )
    assert body.ignored() == ["metadata", "parallel_tool_calls", "service_tier", "store", "user"]
    assert body.extras(None, None).logit_bias == {}
    assert ChatBody.model_validate({"messages": USER}).ignored() == []


def test_served_extras_reach_the_plan_extras() -> None:
    body = ChatBody.model_validate(
        {
            "messages": USER,
            "presence_penalty": 0.5,
            "frequency_penalty": -0.25,
            "logit_bias": {"42": -100},
            "logprobs": True,
            "top_logprobs": 3,
            "n": 2,
        }
    )
    x = body.extras(body.grammar(), body.n_logprobs())
    assert (x.presence_penalty, x.frequency_penalty, x.logprobs) == (0.5, -0.25, 3)
    assert x.logit_bias == {42: -100.0} and x.grammar is None and body.n == 2
    off = ChatBody.model_validate({"messages": USER, "top_logprobs": 3})
    assert off.n_logprobs() is None  # top_logprobs counts only with logprobs on


def test_tool_turns_become_text_the_model_can_read() -> None:
    body = ChatBody.model_validate(
        {
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather"}}],
        }
    )
    req = body.to_bus("TOOLS")
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "user"]
    assert req.messages[0].content == "TOOLS"
    assert req.messages[2].content == '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    assert req.messages[3].content == "Result of get_weather: 18 C, sunny"


def test_image_parts_are_refused() -> None:
    parts = [{"type": "image_url", "image_url": {"url": "data:,"}}]
    with pytest.raises(ValidationError, match="image_url"):
        ChatBody.model_validate({"messages": [{"role": "user", "content": parts}]})
