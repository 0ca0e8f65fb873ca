"""The endpoint declarations: one per queryable, keys and types, served and called."""

from __future__ import annotations

import zenoh

from emily.bus import Keys
from emily.bus.endpoints import (
    ENDPOINTS,
    SERVICES,
    STATS,
    TOPICS,
    WORKSPACE_BROADCAST,
    served_by,
)
from emily.bus.messages import Message
from emily.bus.rpc import wait_for_server
from emily.bus.schemas.memory import IndexStatus, PoolStats, StatsReply, StatsRequest

KEYS = Keys("test")


def test_every_queryable_is_declared_once_under_its_service() -> None:
    names = [e.name for e in ENDPOINTS]
    assert len(names) == len(set(names))
    assert set(names) == {
        "cognition/observe",
        "inference/generate",
        "inference/chat",
        "inference/cancel",
        "inference/info",
        "memory/store",
        "memory/recall",
        "memory/stats",
        "memory/facts",
        "memory/consolidate",
        "memory/forget",
        "memory/correct",
        "memory/export",
        "memory/events",
        "memory/rebuild",
        "perception/transcribe",
        "perception/read",
        "perception/caption",
    }
    assert SERVICES == ("cognition", "inference", "memory", "perception")
    assert [e.verb for e in served_by("memory")] == [
        "store",
        "recall",
        "stats",
        "facts",
        "consolidate",
        "forget",
        "correct",
        "export",
        "events",
        "rebuild",
    ]
    for e in ENDPOINTS:
        assert issubclass(e.request, Message) and issubclass(e.reply, Message)
        assert e.key(KEYS) == f"emily/test/{e.service}/{e.verb}"
    assert {e.name for e in ENDPOINTS if e.streams} == {"inference/generate", "inference/chat"}


def test_topics_are_under_events() -> None:
    assert {t.key(KEYS) for t in TOPICS} == {
        "emily/test/events/memory.operations",
        "emily/test/events/neural.spikes",
        "emily/test/events/workspace.broadcast",
    }
    assert WORKSPACE_BROADCAST.message.__name__ == "WorkspaceBroadcast"


def test_serve_and_call_through_the_declaration(
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
) -> None:
    """A handler served with ``serve`` answers ``call`` with the declared reply type."""
    server_side, client_side = zenoh_pair
    keys = Keys("endpoints")
    reply = StatsReply(
        episodes=3,
        tiers=[],
        misses=0,
        outbox_pending=0,
        pool=PoolStats(
            min_size=1, max_size=2, size=1, available=1, waiting=0, requests=0, errors=0
        ),
        index=IndexStatus(
            m=16,
            ef_construction=64,
            ef_search=40,
            iterative_scan="relaxed_order",
            max_scan_tuples=20000,
            storage="vector",
        ),
        device="cpu",
    )
    server = STATS.serve(server_side, keys, lambda _req: reply, workers=1)
    try:
        assert wait_for_server(client_side, STATS.key(keys), timeout_s=5)
        got = STATS.call(client_side, keys, StatsRequest(), timeout_s=5)
        assert isinstance(got, StatsReply) and got == reply
    finally:
        server.close()


def test_the_readme_lists_every_queryable_and_stream_with_its_types() -> None:
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    for e in ENDPOINTS:
        streamed = ", streamed" if e.streams else ""
        row = f"| `{e.name}` | `{e.request.__name__}` | `{e.reply.__name__}`{streamed} |"
        assert row in readme, f"README's bus table lacks: {row}"
    for t in TOPICS:
        assert f"`events/{t.name}` (`{t.message.__name__}`)" in readme, t.name
