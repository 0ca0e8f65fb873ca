"""OpenAI parity over real HTTP: fields served, ignored (and named) or refused, logprobs,
``n``, penalties, logit bias, JSON mode, streamed tool calls, the health and docs routes,
and cancellation when a non-streaming client goes away."""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Any
from urllib.parse import urlparse

import openai
import pytest

from emily.inference.scheduler import Scheduler
from tests.fixtures.llm import RunningInference

pytestmark = pytest.mark.slow
MODEL = "gemma-3-270m-q4_k_m"
USER = [{"role": "user", "content": "What is the capital of Spain?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def client(inference_service: RunningInference) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{inference_service.http_url}/v1", api_key="unused", max_retries=0, timeout=120
    )


def request(
    url: str, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    out = resp.read()
    conn.close()
    return resp.status, out, {k.lower(): v for k, v in resp.getheaders()}


def test_harmless_fields_are_served_and_named_in_a_header(
    inference_service: RunningInference, caplog: pytest.LogCaptureFixture
) -> None:
    body = {
        "model": MODEL,
        "messages": USER,
        "max_tokens": 4,
        "metadata": {"run": "1"},
        "store": False,
        "logit_bias": {},
        "service_tier": "auto",
        "user": "u-1",
        "parallel_tool_calls": True,
        "stream_options": None,
    }
    with caplog.at_level("INFO", logger="emily.inference.http_api"):
        status, data, headers = request(
            inference_service.http_url, "POST", "/v1/chat/completions", body
        )
    assert status == 200, data
    named = "metadata, parallel_tool_calls, service_tier, store, user"
    assert headers["x-emily-ignored-fields"] == named
    assert named in caplog.text
    assert json.loads(data)["choices"][0]["message"]["content"]
    status, _, headers = request(
        inference_service.http_url,
        "POST",
        "/v1/chat/completions",
        {"messages": USER, "max_tokens": 2},
    )
    assert status == 200 and "x-emily-ignored-fields" not in headers


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"modalities": ["audio"]}, "modalities"),
        ({"max_tokns": 3}, "max_tokns"),
    ],
)
def test_fields_that_would_change_the_output_are_a_400_that_names_them(
    inference_service: RunningInference, extra: dict[str, Any], named: str
) -> None:
    status, data, _ = request(
        inference_service.http_url, "POST", "/v1/chat/completions", {"messages": USER, **extra}
    )
    err = json.loads(data)["error"]
    assert status == 400 and err["param"] == named and named in err["message"]
    assert err["type"] == "invalid_request_error" and err["code"] == "bad_request"


def test_health_openapi_and_docs_are_served_without_a_cdn(
    inference_service: RunningInference,
) -> None:
    url = inference_service.http_url
    status, data, _ = request(url, "GET", "/health")
    health = json.loads(data)
    assert status == 200 and health["status"] == "ok"
    assert health["slots_idle"] + health["slots_processing"] == 4
    status, data, _ = request(url, "GET", "/openapi.json")
    doc = json.loads(data)
    served = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/health"}
    assert status == 200 and served <= set(doc["paths"])
    assert "ChatBody" in doc["components"]["schemas"]
    status, data, headers = request(url, "GET", "/docs")
    page = data.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "openapi.json" in page and "<script src" not in page and "https://" not in page
    status, data, _ = request(url, "GET", "/nope")
    assert status == 404 and json.loads(data)["error"]["code"] == "http_404"


def test_chat_logprobs_are_those_of_the_greedy_choice(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model=MODEL, messages=USER, max_tokens=6, temperature=0, logprobs=True, top_logprobs=3
    )
    choice = out.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    entries = choice.logprobs.content
    assert "".join(e.token for e in entries).strip() == (choice.message.content or "").strip()
    for e in entries:
        assert e.logprob <= 0 and len(e.top_logprobs) == 3
        assert e.top_logprobs[0].token == e.token  # greedy: the best token was chosen
        assert e.top_logprobs[0].logprob == pytest.approx(e.logprob)
        assert [t.logprob for t in e.top_logprobs] == sorted(
            (t.logprob for t in e.top_logprobs), reverse=True
        )
        assert bytes(e.bytes or []).decode() == e.token


def test_completion_logprobs_have_the_legacy_shape(client: openai.OpenAI) -> None:
    out = client.completions.create(
        model=MODEL,
        prompt="The sun is a",
        max_tokens=4,
        temperature=0,
        logprobs=2,
        extra_body={"ignore_eos": True},
    )
    lp = out.choices[0].logprobs
    assert lp is not None and lp.tokens and len(lp.tokens) == 4
    assert "".join(lp.tokens) == out.choices[0].text
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(4)]
    assert all(len(top) == 2 for top in lp.top_logprobs or [])


def test_n_choices_each_answer(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model=MODEL, messages=USER, max_tokens=6, temperature=1.0, seed=3, n=3
    )
    assert [c.index for c in out.choices] == [0, 1, 2]
    assert all(c.message.content for c in out.choices)
    assert out.usage is not None and out.usage.completion_tokens >= 3


def test_penalties_and_logit_bias_change_a_greedy_output(
    client: openai.OpenAI, inference_service: RunningInference
) -> None:
    args: dict[str, Any] = {
        "model": MODEL,
        "prompt": "1 1 1 1 1 1 1 1",
        "max_tokens": 8,
        "temperature": 0,
        "extra_body": {"ignore_eos": True, "repeat_penalty": 1.0},
    }
    plain = client.completions.create(**args).choices[0].text
    penalised = client.completions.create(frequency_penalty=2.0, presence_penalty=2.0, **args)
    assert penalised.choices[0].text != plain
    one = args | {"max_tokens": 1}
    first = client.completions.create(**one).choices[0].text
    (token,) = inference_service.service.engine.tokenize(first, special=False)
    banned = client.completions.create(logit_bias={str(token): -100}, **one).choices[0].text
    assert banned != first
    same = client.completions.create(logit_bias={str(token): 0}, **one).choices[0].text
    assert same == first


def test_json_object_mode_answers_an_object(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Give a city and its country as JSON."}],
        max_tokens=40,
        temperature=0,
        response_format={"type": "json_object"},
    )
    text = out.choices[0].message.content or ""
    if out.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)
    else:  # cut by max_tokens: still an object as far as it goes
        assert text.startswith("{")


def test_tool_calls_stream_as_deltas(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice="required",
            temperature=0,
            max_tokens=40,
            stream=True,
        )
    )
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas and deltas[0].id and deltas[0].function and deltas[0].function.name
    args = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert deltas[0].function.name == "get_weather" and "city" in json.loads(args)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_tool_result_turn_is_answered(client: openai.OpenAI) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees and sunny"},
    ]
    out = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[WEATHER],
        max_tokens=20,
        temperature=0,  # type: ignore[list-item]
    )
    c = out.choices[0]
    assert c.message.content or c.message.tool_calls


def test_a_non_streaming_client_that_goes_away_frees_its_slot(
    inference_service: RunningInference,
) -> None:
    scheduler: Scheduler = inference_service.service.scheduler
    u = urlparse(inference_service.http_url)
    body = json.dumps(
        {"prompt": "Count:", "max_tokens": 900, "ignore_eos": True, "temperature": 0}
    ).encode()
    sock = socket.create_connection((u.hostname, u.port))
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock.sendall(head + body)
    deadline = time.monotonic() + 60
    while scheduler.running == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert scheduler.running == 1
    sock.close()
    while scheduler.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scheduler.running == 0  # cancelled long before 900 tokens


def test_n_choices_stream_with_their_indexes(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=USER, max_tokens=5, temperature=0, n=2, stream=True
        )
    )
    texts: dict[int, str] = {0: "", 1: ""}
    finishes: dict[int, str | None] = {}
    for c in chunks:
        for choice in c.choices:
            texts[choice.index] += choice.delta.content or ""
            finishes[choice.index] = choice.finish_reason or finishes.get(choice.index)
    assert texts[0] and texts[0] == texts[1]  # greedy: both choices agree
    assert set(finishes) == {0, 1} and all(finishes.values())


def test_tool_choice_none_streams_a_plain_answer_as_content(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Say hello."}],
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice="none",
            max_tokens=8,
            temperature=0,
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() and not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
