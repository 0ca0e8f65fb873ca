"""1,000 fuzzed payloads on each of perception's queryables; then it still answers."""

from __future__ import annotations

import pytest
import zenoh
from hypothesis import HealthCheck, given, settings

from emily.bus.endpoints import READ, served_by
from emily.bus.schemas.perception import ReadRequest, b64_media
from emily.perception.service import PerceptionService
from tests.fuzz import answered, payloads
from tests.perception.conftest import KEYS
from tests.perception.media import note

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("endpoint", served_by("perception"), ids=lambda e: e.name)
def test_every_fuzzed_payload_is_answered_and_perception_still_serves(
    perception: PerceptionService,
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
    endpoint: object,
) -> None:
    _, client = zenoh_pair
    key = endpoint.key(KEYS)  # type: ignore[attr-defined]

    @settings(
        max_examples=1000,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(payloads(endpoint.request))  # type: ignore[attr-defined]
    def fuzz(payload: bytes) -> None:
        answered(client, key, payload)

    fuzz()
    image = note(["Dentist on Tuesday at nine."])
    reply = READ.call(client, KEYS, ReadRequest(image=b64_media(image)), timeout_s=60)
    assert reply.text == "Dentist on Tuesday at nine."
