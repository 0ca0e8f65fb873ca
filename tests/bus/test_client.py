"""Client.connect: waits for the service, says how to start it when it is absent."""

from __future__ import annotations

import pytest
import zenoh

from emily.bus import BusConfig, Keys
from emily.bus.client import Client, ServiceAbsent
from emily.bus.endpoints import CANCEL, INFO
from emily.bus.schemas.inference import CancelReply, CancelRequest


def test_connect_to_an_absent_service_names_it_and_how_to_start_it(
    bus_configs: tuple[BusConfig, BusConfig],
) -> None:
    bus = bus_configs[1]
    with pytest.raises(ServiceAbsent, match=r"no inference service answers on emily/test/") as e:
        Client.connect(bus, INFO, wait_s=0.2)
    assert "emily serve inference" in str(e.value) and "emily up" in str(e.value)
    assert e.value.endpoint is INFO


def test_connect_waits_then_calls_with_the_default_deadline(
    zenoh_pair: tuple[zenoh.Session, zenoh.Session], bus_configs: tuple[BusConfig, BusConfig]
) -> None:
    server_side, _ = zenoh_pair
    bus = bus_configs[1]
    cancelled: list[str] = []

    def cancel(req: CancelRequest) -> CancelReply:
        cancelled.append(req.request_id)
        return CancelReply(request_id=req.request_id, cancelled=True)

    server = CANCEL.serve(server_side, Keys(bus.node), cancel, workers=1)
    try:
        with Client.connect(bus, CANCEL, wait_s=5) as client:
            reply = client.call(CANCEL, CancelRequest(request_id="r-1"))
        assert reply.cancelled and cancelled == ["r-1"]
    finally:
        server.close()
