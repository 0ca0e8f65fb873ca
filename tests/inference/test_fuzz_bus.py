"""1,000 fuzzed payloads on each of inference's queryables; then it still answers."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from emily.bus.endpoints import GENERATE, served_by
from emily.bus.rpc import call
from emily.bus.schemas.inference import GenerateRequest, GenerationChunk
from tests.fixtures.llm import RunningInference
from tests.fuzz import answered, count, payloads

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("endpoint", served_by("inference"), ids=lambda e: e.name)
def test_every_fuzzed_payload_is_answered_and_inference_still_serves(
    inference_service: RunningInference, endpoint: object
) -> None:
    key = endpoint.key(inference_service.keys)  # type: ignore[attr-defined]
    caps = {"max_tokens": 2, "n": 2, "top_logprobs": 2}

    @settings(
        max_examples=1000,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(payloads(endpoint.request, caps=caps))  # type: ignore[attr-defined]
    def fuzz(payload: bytes) -> None:
        outcomes.append(answered(inference_service.session, key, payload))

    outcomes: list[bool] = []
    fuzz()
    served, refused = count(outcomes)
    assert served > 0 and refused > 0, (served, refused)
    req = GenerateRequest(prompt="The capital of France is", max_tokens=4, temperature=0)
    got = call(
        inference_service.session,
        GENERATE.key(inference_service.keys),
        req,
        GenerationChunk,
        timeout_s=120,
    )
    assert got.done and got.usage is not None and got.usage.completion_tokens >= 1
