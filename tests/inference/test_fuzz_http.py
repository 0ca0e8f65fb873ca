"""1,000 fuzzed requests per route of the inference HTTP API, driven by its OpenAPI document."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.fixtures.llm import RunningInference
from tests.fuzz import fuzz_route, http_cases, http_status

pytestmark = pytest.mark.slow
CAPS = {"max_tokens": 2, "max_completion_tokens": 2, "n": 2, "top_logprobs": 2}


def test_every_route_answers_fuzzed_requests_without_a_server_error(
    inference_service: RunningInference,
) -> None:
    base = inference_service.http_url
    with urllib.request.urlopen(f"{base}/openapi.json", timeout=10) as resp:
        doc = json.loads(resp.read())
    cases = http_cases(doc, caps=CAPS)
    assert ("POST", "/v1/chat/completions") in {(m, p) for m, p, _ in cases}
    for method, path, bodies in cases:
        fuzz_route(base, method, path, bodies)
    status, raw = http_status(base, "GET", "/v1/models", b"")
    model = json.loads(raw)["data"][0]["id"]
    ask = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    status, raw = http_status(base, "POST", "/v1/chat/completions", json.dumps(ask).encode())
    assert status == 200 and json.loads(raw)["choices"][0]["message"]["role"] == "assistant"
