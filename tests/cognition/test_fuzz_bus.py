"""1,000 fuzzed payloads on cognition/observe; then it still answers correctly."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from emily.bus.endpoints import OBSERVE
from emily.bus.rpc import call
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from tests.cognition.conftest import RunningCognition
from tests.fuzz import answered, count, payloads

pytestmark = pytest.mark.slow


def test_every_fuzzed_observation_is_answered_and_cognition_still_serves(
    cognition: RunningCognition,
) -> None:
    key = OBSERVE.key(cognition.service.keys)

    @settings(
        max_examples=1000,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(payloads(ObserveRequest, caps={"max_tokens": 2}))
    def fuzz(payload: bytes) -> None:
        outcomes.append(answered(cognition.client, key, payload))

    outcomes: list[bool] = []
    fuzz()
    served, refused = count(outcomes)
    assert served > 0 and refused > 0, (served, refused)  # both paths were exercised
    reply = call(cognition.client, key, ObserveRequest(text="hello"), ObserveReply, timeout_s=30)
    assert reply.trace.tier == "reflex" and reply.trace.reflex.intent == "greeting"
