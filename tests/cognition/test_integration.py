"""The whole cycle against the real memory service (Postgres + pgvector, MiniLM) and the
real inference service (llama.cpp, Gemma 3 270M), all over Zenoh on loopback."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import zenoh

from emily.bus import BusConfig, Keys, open_session
from emily.bus.endpoints import OBSERVE, RECALL
from emily.bus.rpc import call
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from emily.bus.schemas.memory import RecallReply, RecallRequest
from emily.cognition.reflex import Reflex
from emily.embed import Embedder
from emily.memory.config import MemoryConfig
from emily.memory.core import Memory
from emily.memory.metrics import MemoryMetrics
from emily.memory.service import MemoryService, serve
from emily.memory.store import PgStore
from tests.cognition.conftest import RunningCognition, start_cognition
from tests.fixtures.llm import RunningInference

pytestmark = pytest.mark.slow
KEYS = Keys("test")
OBSERVE_KEY = OBSERVE.key(KEYS)


@pytest.fixture(scope="module")
def memory_embedder(minilm: Embedder) -> Embedder:
    """The memory service's MiniLM model (the session's shared one)."""
    return minilm


class MemoryProcess:
    """The real memory service on its own Zenoh session (as its own process would be)."""

    def __init__(self, dsn: str, root: Path, embedder: Embedder, connect: str) -> None:
        self.session = open_session(BusConfig(node="test", listen=(), connect=(connect,)))
        cfg = MemoryConfig(state=root, hnsw_m=8, hnsw_ef_construction=32, pool_timeout_s=2.0)
        memory = Memory(cfg, PgStore(dsn, cfg), embedder, metrics=MemoryMetrics())
        self.service: MemoryService = serve(memory, self.session, KEYS, workers=2)

    def close(self) -> None:
        self.service.close()
        self.session.close()


def observe(c: RunningCognition, text: str, **kw: object) -> ObserveReply:
    req = ObserveRequest.model_validate({"text": text, "max_tokens": 16, **kw})
    return call(c.client, OBSERVE_KEY, req, ObserveReply, timeout_s=180)


def recall_texts(session: zenoh.Session, text: str) -> list[str]:
    reply = call(
        session,
        RECALL.key(KEYS),
        RecallRequest(text=text, k=10),
        RecallReply,
        timeout_s=30,
    )
    return [h.episode.text for h in reply.hits]


def wait_until_stored(session: zenoh.Session, text: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in recall_texts(session, text):
        assert time.monotonic() < deadline, f"episode {text!r} never reached memory"
        time.sleep(0.2)


@pytest.fixture
def stack(
    private_reflex: Reflex,
    inference_service: RunningInference,
    pg_dsn: str,
    memory_embedder: Embedder,
    tmp_path: Path,
) -> Iterator[tuple[RunningCognition, MemoryProcess]]:
    """Cognition connected to the real inference service, and the real memory service."""
    cognition = start_cognition(
        private_reflex,
        connect=inference_service.bus.connect,
        deliberate_timeout_s=150.0,
        recall_timeout_s=10.0,
    )
    memory = MemoryProcess(pg_dsn, tmp_path / "memory", memory_embedder, cognition.endpoint)
    assert cognition.service.peers.wait("memory", 20)
    assert cognition.service.peers.wait("inference", 20)
    yield cognition, memory
    memory.close()
    cognition.close()


def test_full_cycle_against_real_memory_and_inference(
    stack: tuple[RunningCognition, MemoryProcess],
) -> None:
    cognition, _ = stack
    hello = observe(cognition, "hello")
    assert hello.trace.tier == "reflex" and hello.trace.missing == []

    fact = "My sister Ana's birthday is on the fourteenth of March"
    observe(cognition, fact, allow_llm=False)
    wait_until_stored(cognition.client, fact)  # every cycle stores an episode

    asked = observe(cognition, "What did I tell you about my sister Ana?", allow_llm=False)
    used = {m.text: m.score for m in asked.trace.memories}
    assert fact in used and used[fact] > 0.35, asked.trace
    assert asked.trace.tier == "memory" and "fourteenth of March" in asked.response
    assert "recall" in asked.trace.latencies_ms

    thought = observe(cognition, "Why is the sky blue during the day?")
    t = thought.trace
    assert t.tier == "deliberation", t
    assert thought.action == "deliberate" and thought.response.strip()
    assert t.ttft_ms is not None and t.missing == []
    assert {"reflex", "embed", "recall", "workspace", "policy", "deliberate"} <= set(t.latencies_ms)
    g = {p.policy: p.G for p in t.policies}
    assert min(g, key=g.__getitem__) == "deliberate"


def test_episodes_wait_for_memory_and_arrive_when_it_comes_back(
    private_reflex: Reflex, pg_dsn: str, memory_embedder: Embedder, tmp_path: Path
) -> None:
    cognition = start_cognition(private_reflex)
    try:
        first = observe(cognition, "The spare key is under the blue flowerpot", allow_llm=False)
        assert "memory" in first.trace.missing and first.trace.episode == "queued"
        assert len(cognition.service.cognition.episodes.pending) == 1
        memory = MemoryProcess(pg_dsn, tmp_path / "memory", memory_embedder, cognition.endpoint)
        try:
            assert cognition.service.peers.wait("memory", 20)
            observe(cognition, "thanks", allow_llm=False)  # the next cycle flushes the queue
            wait_until_stored(cognition.client, "The spare key is under the blue flowerpot")
            wait_until_stored(cognition.client, "thanks")
            assert len(cognition.service.cognition.episodes.pending) == 0
        finally:
            memory.close()
    finally:
        cognition.close()


def test_queued_episodes_survive_a_cognition_restart_and_are_stored_once(
    private_reflex: Reflex, pg_dsn: str, memory_embedder: Embedder, tmp_path: Path
) -> None:
    """Cognition queues an episode while memory is away, is restarted (same state dir),
    and delivers it once memory is back: one row in Postgres, with the cycle's UUIDv7."""
    text = f"My bike lock code is {uuid.uuid4().hex[:8]}"
    first = start_cognition(private_reflex)
    try:
        reply = observe(first, text, allow_llm=False)
        assert reply.trace.episode == "queued"
        assert len(first.service.cognition.episodes.pending) == 1
    finally:
        first.close()
    second = start_cognition(private_reflex)
    try:
        assert len(second.service.cognition.episodes.pending) == 1
        memory = MemoryProcess(pg_dsn, tmp_path / "memory", memory_embedder, second.endpoint)
        try:
            assert second.service.peers.wait("memory", 20)
            observe(second, "thanks", allow_llm=False)  # the next cycle flushes the queue
            wait_until_stored(second.client, text)
            assert len(second.service.cognition.episodes.pending) == 0
        finally:
            memory.close()
    finally:
        second.close()
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT id FROM episodes WHERE text = %s", (text,)).fetchall()
    assert len(rows) == 1 and rows[0][0].version == 7
