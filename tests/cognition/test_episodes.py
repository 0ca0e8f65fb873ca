"""The episode writer: durable across restarts, and a refused episode never blocks others."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import zenoh

from emily.bus import Keys
from emily.bus.endpoints import STORE
from emily.bus.health import Peers, announce
from emily.bus.messages import ErrorReply
from emily.bus.rpc import RequestFailed
from emily.bus.schemas.memory import EpisodeIn, StoreReply, StoreRequest
from emily.cognition.clients import MemoryClient
from emily.cognition.episodes import EpisodeWriter
from emily.cognition.metrics import CognitionMetrics
from emily.cognition.outbox import EpisodeOutbox
from emily.ids import uuid7


def episode(text: str) -> EpisodeIn:
    return EpisodeIn(id=uuid7(), text=text, source="cognition")


def test_the_outbox_keeps_episodes_across_a_reopen_once_per_id_and_bounded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "episodes.sqlite"
    box = EpisodeOutbox(path)
    first = episode("one")
    assert box.put(first, keep=3) == 0
    assert box.put(first, keep=3) == 0  # the same id again: kept once
    for text in ("two", "three", "four"):
        box.put(episode(text), keep=3)
    box.close()
    again = EpisodeOutbox(path)
    assert [e.text for _, e in again.peek(10)] == ["two", "three", "four"]
    again.remove([seq for seq, _ in again.peek(1)])
    assert len(again) == 2
    again.close()


def test_an_outbox_row_that_no_longer_decodes_is_removed_not_blocking(tmp_path: Path) -> None:
    """A damaged row (written here on purpose) is dropped; the episode after it stays."""
    path = tmp_path / "episodes.sqlite"
    box = EpisodeOutbox(path)
    box.close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO episodes (id, episode) VALUES ('x', '{\"text\": \"\"}')")
    box = EpisodeOutbox(path)
    box.put(episode("fine"), keep=10)
    assert [e.text for _, e in box.peek(10)] == ["fine"] and len(box) == 1
    box.close()


def test_injected_refusing_memory_drops_only_the_refused_episode(
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
) -> None:
    """A memory stand-in (a fault injected on purpose) refuses any batch holding the
    poison episode with ``bad_request``, as memory does for a record Postgres refuses:
    the writer drops that one episode, counts it, and stores every other."""
    server_side, client_side = zenoh_pair
    keys = Keys("poison")
    stored: list[str] = []
    lock = threading.Lock()

    def store(req: StoreRequest) -> StoreReply:
        for i, ep in enumerate(req.episodes):
            if ep.text.startswith("poison"):
                message = f"episodes.{i}.text: refused on purpose"
                raise RequestFailed(ErrorReply(code="bad_request", message=message))
        with lock:
            stored.extend(ep.text for ep in req.episodes)
        return StoreReply(ids=[ep.id for ep in req.episodes if ep.id], durable=True, queued=0)

    server = STORE.serve(server_side, keys, store, workers=1)
    token = announce(server_side, keys, "memory")
    peers = Peers(client_side, keys)
    metrics = CognitionMetrics()
    writer = EpisodeWriter(MemoryClient(client_side, keys, peers), metrics, timeout_s=5)
    try:
        assert peers.wait("memory", 10)
        texts = ["a", "b", "poison pill", "c", "d"]
        for text in texts:
            writer.submit(episode(text))
        deadline = time.monotonic() + 30
        while len(writer.pending) and time.monotonic() < deadline:
            writer.flush()
            time.sleep(0.05)
        assert sorted(stored) == ["a", "b", "c", "d"]
        assert writer.refused == 1 and len(writer.pending) == 0
        assert metrics.episodes.labels("refused")._value.get() == 1
    finally:
        writer.close()
        peers.close()
        token.undeclare()
        server.close()
