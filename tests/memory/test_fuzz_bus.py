"""1,000 fuzzed payloads on each of memory's queryables; then it still answers correctly."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from emily.bus.endpoints import CORRECT, served_by
from emily.bus.rpc import call
from emily.bus.schemas.memory import RecallReply, RecallRequest, StoreReply, StoreRequest
from tests.fuzz import answered, count, payloads
from tests.memory.conftest import KEYS, Running

pytestmark = pytest.mark.slow


# memory/correct succeeds only for stored ids: tests/memory/test_lifecycle.py fuzzes it
@pytest.mark.parametrize(
    "endpoint", [e for e in served_by("memory") if e is not CORRECT], ids=lambda e: e.name
)
def test_every_fuzzed_payload_is_answered_and_memory_still_serves(
    running: Running, endpoint: object
) -> None:
    key = endpoint.key(KEYS)  # type: ignore[attr-defined]

    @settings(
        max_examples=1000,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(payloads(endpoint.request, caps={"k": 5}))  # type: ignore[attr-defined]
    def fuzz(payload: bytes) -> None:
        outcomes.append(answered(running.client, key, payload))

    outcomes: list[bool] = []
    fuzz()
    served, refused = count(outcomes)
    assert served > 0 and refused > 0, (served, refused)  # both paths were exercised
    text = "the fuzzing is over and the lighthouse keeper waves"
    stored = call(
        running.client,
        served_by("memory")[0].key(KEYS),
        StoreRequest.model_validate({"episodes": [{"text": text, "source": "after-fuzz"}]}),
        StoreReply,
        timeout_s=60,
    )
    assert len(stored.ids) == 1
    got = call(
        running.client,
        served_by("memory")[1].key(KEYS),
        RecallRequest.model_validate(
            {"text": "lighthouse keeper waves", "k": 3, "filters": {"source": "after-fuzz"}}
        ),
        RecallReply,
        timeout_s=30,
    )
    assert [h.episode.text for h in got.hits][:1] == [text]
