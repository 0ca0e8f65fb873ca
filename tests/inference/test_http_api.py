"""The OpenAI-compatible HTTP API, driven by the official ``openai`` client and raw HTTP."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emily.bus.endpoints import GENERATE
from emily.bus.rpc import call
from emily.bus.schemas.inference import GenerateRequest, GenerationChunk
from emily.inference.http_api import create_app
from emily.observe.http import HTTPServer
from tests.conftest import free_port
from tests.fixtures.llm import RunningInference

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(inference_service: RunningInference) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{inference_service.http_url}/v1", api_key="unused", max_retries=0, timeout=120
    )


def post(
    url: str, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    conn.request(
        "POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data or b"{}"), dict(resp.getheaders())


def get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def metric(url: str, name: str) -> float:
    """Value of the sample ``name`` (with its labels, if any) on ``/metrics``; 0 if absent."""
    _, body = get(url, "/metrics")
    for line in body.decode().splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == name:
            return float(value)
    return 0.0


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == ["gemma-3-270m-q4_k_m", "all-MiniLM-L6-v2"]


def test_chat_completion_with_the_openai_client(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model="gemma-3-270m-q4_k_m",
        messages=[{"role": "user", "content": "What is the capital of Spain?"}],
        max_tokens=12,
        temperature=0,
    )
    assert out.choices[0].message.role == "assistant"
    assert out.choices[0].message.content and out.choices[0].message.content.strip()
    assert out.choices[0].finish_reason in ("stop", "length")
    assert out.usage is not None and out.usage.prompt_tokens > 50  # the few-shot prompt
    assert 1 <= out.usage.completion_tokens <= 12


def test_chat_streaming_with_the_openai_client(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gemma-3-270m-q4_k_m",
            messages=[{"role": "user", "content": "Name a colour."}],
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert text.strip() and finishes[-1] in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1


def test_completion_stream_and_whole_agree(client: openai.OpenAI) -> None:
    args: dict[str, Any] = {
        "model": "gemma-3-270m-q4_k_m",
        "prompt": "The sun is a",
        "max_tokens": 6,
        "temperature": 0,
        "extra_body": {"ignore_eos": True},
    }
    whole = client.completions.create(**args)
    parts = list(client.completions.create(stream=True, **args))
    assert "".join(p.choices[0].text for p in parts) == whole.choices[0].text
    assert whole.usage is not None and whole.usage.completion_tokens == 6
    assert whole.choices[0].finish_reason == "length"


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="gpt-9"):
        client.completions.create(model="gpt-9", prompt="hi", max_tokens=2)


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b'{"prompt": "hi", "max_tokens": 2', "JSON"),
        (b'{"prompt": "hi", "temperature": 9}', "temperature"),
        (b'{"prompt": "hi", "top_p": 0}', "top_p"),
        (b'{"prompt": "hi", "max_tokens": -1}', "max_tokens"),
        (b'{"prompt": "hi", "n": 9}', "n"),
        (b'{"prompt": "hi", "logprobs": 6}', "logprobs"),
        (b'{"prompt": ["a", "b"]}', "one prompt"),
        (b'{"prompt": "hi", "frequency_penalty": 2.5}', "frequency_penalty"),
        (b'{"max_tokens": 2}', "prompt"),
        (b"[1, 2]", "body"),
    ],
)
def test_bad_completion_bodies_get_400_naming_the_problem(
    inference_service: RunningInference, body: bytes, names: str
) -> None:
    status, data, _ = post(inference_service.http_url, "/v1/completions", body)
    assert status == 400
    assert data["error"]["type"] == "invalid_request_error"
    assert names in data["error"]["message"]


def test_bad_chat_bodies_get_400(inference_service: RunningInference) -> None:
    for body, names in [
        (b'{"messages": []}', "messages"),
        (b'{"messages": [{"role": "robot", "content": "x"}]}', "role"),
        (b'{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', "temperature"),
    ]:
        status, data, _ = post(inference_service.http_url, "/v1/chat/completions", body)
        assert status == 400 and names in data["error"]["message"], data


def test_oversize_prompt_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="exceed the context of 1024 tokens"):
        client.completions.create(model="gemma-3-270m-q4_k_m", prompt="word " * 3000, max_tokens=4)


def test_healthz_and_metrics(inference_service: RunningInference, client: openai.OpenAI) -> None:
    status, body = get(inference_service.http_url, "/healthz")
    health = json.loads(body)
    assert status == 200 and health["backend"] == "cpu" and health["status"] == "ok"
    before = metric(inference_service.http_url, "emily_inference_generated_tokens_total")
    client.completions.create(
        model="gemma-3-270m-q4_k_m",
        prompt="One, two,",
        max_tokens=3,
        extra_body={"ignore_eos": True},
    )
    after = metric(inference_service.http_url, "emily_inference_generated_tokens_total")
    assert after - before == 3
    _, text = get(inference_service.http_url, "/metrics")
    page = text.decode()
    for name in (
        "emily_inference_ttft_seconds_bucket",
        "emily_inference_latency_seconds_count",
        "emily_inference_prompt_tokens_total",
        "emily_inference_tokens_per_second",
        "emily_inference_queue_depth",
        'emily_inference_backend_info{backend="cpu"',
    ):
        assert name in page, name


def _read_first_event_then_hang_up(url: str) -> None:
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    body = json.dumps(
        {"prompt": "Count:", "max_tokens": 800, "ignore_eos": True, "stream": True}
    ).encode()
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read1(4096).startswith(b"data: ")
    resp.close()
    conn.close()


def cancelled_count(url: str) -> float:
    return metric(url, 'emily_inference_requests_total{api="http",finish_reason="cancelled"}')


def test_client_disconnect_cancels_and_frees_the_slot(
    inference_service: RunningInference, client: openai.OpenAI
) -> None:
    url = inference_service.http_url
    before = cancelled_count(url)
    _read_first_event_then_hang_up(url)
    deadline = time.monotonic() + 60
    while cancelled_count(url) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cancelled_count(url) == before + 1
    out = client.completions.create(model="gemma-3-270m-q4_k_m", prompt="Hi", max_tokens=2)
    assert out.usage is not None and out.usage.completion_tokens >= 1


def test_full_queue_answers_429_with_retry_after(inference_service: RunningInference) -> None:
    url = inference_service.http_url
    stops: list[threading.Event] = []

    def long_stream() -> None:
        u = urlparse(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        body = json.dumps(
            {"prompt": "Go", "max_tokens": 900, "ignore_eos": True, "stream": True}
        ).encode()
        conn.request(
            "POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"}
        )
        resp = conn.getresponse()
        stop = threading.Event()
        stops.append(stop)
        stop.wait(60)
        resp.close()
        conn.close()

    config = inference_service.service.scheduler.config
    n = config.slots + config.queue_size  # every slot running and the queue full
    threads = [threading.Thread(target=long_stream) for _ in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    scheduler = inference_service.service.scheduler

    def full() -> bool:
        return scheduler.running == config.slots and scheduler.depth == config.queue_size

    while not full() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        status, data, headers = post(url, "/v1/completions", b'{"prompt": "x", "max_tokens": 1}')
        assert status == 429 and data["error"]["code"] == "busy"
        assert int(headers["retry-after"]) >= 1 and "retry after" in data["error"]["message"]
    finally:
        while len(stops) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        for s in stops:
            s.set()
        for t in threads:
            t.join(timeout=60)
    deadline = time.monotonic() + 60
    while inference_service.service.scheduler.depth and time.monotonic() < deadline:
        time.sleep(0.05)
    assert inference_service.service.scheduler.depth == 0


@pytest.fixture(scope="module")
def guarded(inference_service: RunningInference) -> Iterator[str]:
    svc = inference_service.service
    app = create_app(svc.engine, svc.scheduler, svc.metrics, api_key="s3cret")
    server = HTTPServer(app, "127.0.0.1", free_port())
    assert server.wait_started()
    yield server.url
    server.close()


def test_bearer_token_is_required_when_configured(guarded: str) -> None:
    status, data = get(guarded, "/v1/models")
    assert status == 401 and "Bearer" in json.loads(data)["error"]["message"]
    assert get(guarded, "/v1/models", {"Authorization": "Bearer wrong"})[0] == 401
    status, data = get(guarded, "/v1/models", {"Authorization": "Bearer s3cret"})
    assert status == 200 and json.loads(data)["data"][0]["id"] == "gemma-3-270m-q4_k_m"
    assert get(guarded, "/healthz")[0] == 200  # probes need no token


def test_openai_client_with_token(guarded: str) -> None:
    c = openai.OpenAI(base_url=f"{guarded}/v1", api_key="s3cret", max_retries=0)
    out = c.completions.create(model="gemma-3-270m-q4_k_m", prompt="Hello", max_tokens=2)
    assert out.choices[0].text is not None
    bad = openai.OpenAI(base_url=f"{guarded}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.completions.create(model="gemma-3-270m-q4_k_m", prompt="Hello", max_tokens=2)


fuzz_values = st.none() | st.booleans() | st.integers(-5, 5) | st.floats() | st.text(max_size=6)
fuzz_bodies = st.binary(max_size=80) | st.dictionaries(
    st.sampled_from(["prompt", "messages", "temperature", "top_k", "stop", "n", "model"]),
    fuzz_values,
    max_size=4,
).map(lambda d: json.dumps({**d, "max_tokens": 1}).encode())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(["/v1/completions", "/v1/chat/completions"]), body=fuzz_bodies)
def test_fuzzed_bodies_get_an_answer_or_a_4xx_never_a_5xx(
    inference_service: RunningInference, path: str, body: bytes
) -> None:
    status, data, _ = post(inference_service.http_url, path, body)
    assert status in (200, 400, 404), (status, data)
    if status != 200:
        assert data["error"]["message"]


def test_unknown_route_and_undecodable_body_get_openai_shaped_errors(
    inference_service: RunningInference,
) -> None:
    status, data = get(inference_service.http_url, "/v1/nothing")
    assert status == 404 and json.loads(data)["error"]["code"] == "http_404"
    status, body, _ = post(inference_service.http_url, "/v1/completions", b"\x80")
    assert status == 400 and "UTF-8 JSON" in body["error"]["message"]


def test_http_and_zenoh_give_the_same_greedy_answer(
    inference_service: RunningInference, client: openai.OpenAI
) -> None:
    args: dict[str, Any] = {"max_tokens": 6, "temperature": 0, "ignore_eos": True}
    over_http = client.completions.create(
        model="gemma-3-270m-q4_k_m",
        prompt="Rivers flow",
        max_tokens=6,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    over_zenoh = call(
        inference_service.session,
        GENERATE.key(inference_service.keys),
        GenerateRequest(prompt="Rivers flow", **args),
        GenerationChunk,
        timeout_s=120,
    )
    assert over_http.choices[0].text == over_zenoh.text
    assert over_http.usage is not None and over_zenoh.usage is not None
    assert over_http.usage.prompt_tokens == over_zenoh.usage.prompt_tokens
