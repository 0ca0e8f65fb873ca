"""The bus clients of cognition: deadlines, and what they tell a failing peer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import zenoh

from emily.bus import Keys
from emily.bus.endpoints import CANCEL, CHAT
from emily.bus.health import Peers, announce
from emily.bus.schemas.inference import (
    CancelReply,
    CancelRequest,
    ChatMessage,
    ChatRequest,
    GenerationChunk,
)
from emily.cognition.clients import InferenceClient, PeerUnavailable


def test_injected_slow_inference_gets_a_cancel_when_the_deliberation_deadline_passes(
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
) -> None:
    """An inference stand-in (a fault injected on purpose) streams one piece, then
    stalls: the client gives up at its deadline and sends ``inference/cancel`` with the
    request's id, so the real service would free the slot instead of generating on."""
    server_side, client_side = zenoh_pair
    keys = Keys("slow-llm")
    release = threading.Event()
    asked: list[str] = []
    cancels: list[str] = []

    def chat(req: ChatRequest) -> Iterator[GenerationChunk]:
        assert req.request_id is not None
        asked.append(req.request_id)
        yield GenerationChunk(request_id=req.request_id, model="m", index=0, text="One")
        release.wait(30)  # the stall

    def cancel(req: CancelRequest) -> CancelReply:
        cancels.append(req.request_id)
        release.set()
        return CancelReply(request_id=req.request_id, cancelled=True)

    servers = [CHAT.serve(server_side, keys, chat), CANCEL.serve(server_side, keys, cancel)]
    token = announce(server_side, keys, "inference")
    peers = Peers(client_side, keys)
    try:
        assert peers.wait("inference", 10)
        client = InferenceClient(client_side, keys, peers)
        with pytest.raises(PeerUnavailable, match="inference unavailable"):
            client.chat([ChatMessage(role="user", content="Count")], max_tokens=500, timeout_s=0.5)
        deadline = time.monotonic() + 30
        while not cancels and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(asked) == 1 and cancels == asked
        assert asked[0].startswith("cognition-")
    finally:
        release.set()
        peers.close()
        token.undeclare()
        for server in servers:
            server.close()
