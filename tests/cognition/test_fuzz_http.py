"""1,000 fuzzed requests per route of cognition's HTTP API, driven by its OpenAPI document."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.cognition.conftest import RunningCognition
from tests.fuzz import fuzz_route, http_cases, http_status

pytestmark = pytest.mark.slow


def test_every_route_answers_fuzzed_requests_without_a_server_error(
    cognition: RunningCognition,
) -> None:
    http = cognition.service.http
    assert http is not None
    with urllib.request.urlopen(f"{http.url}/openapi.json", timeout=10) as resp:
        doc = json.loads(resp.read())
    cases = http_cases(doc, caps={"max_tokens": 2})
    assert {(m, p) for m, p, _ in cases} >= {("POST", "/v1/observe"), ("GET", "/healthz")}
    for method, path, bodies in cases:
        statuses = fuzz_route(http.url, method, path, bodies)
        if method == "POST":
            assert 200 in statuses and 400 in statuses, (path, sorted(set(statuses)))
    status, raw = http_status(http.url, "POST", "/v1/observe", b'{"text": "thanks"}')
    assert status == 200 and json.loads(raw)["trace"]["reflex"]["intent"] == "thanks"
