"""The whole cycle against the real memory service (Postgres + pgvector, MiniLM) and the
real inference service (llama.cpp, Gemma 3 270M), all over Zenoh on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import zenoh

from emily.bus import BusConfig, Keys, open_session
from emily.bus.endpoints import CONSOLIDATE, FORGET, OBSERVE, RECALL
from emily.bus.rpc import call, wait_for_server
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from emily.bus.schemas.facts import ConsolidateReply, ConsolidateRequest
from emily.bus.schemas.lifecycle import ForgetRequest
from emily.bus.schemas.memory import RecallReply, RecallRequest
from emily.cognition.reflex import Reflex
from emily.embed import Embedder
from emily.memory.config import MemoryConfig
from emily.memory.core import Memory
from emily.memory.metrics import MemoryMetrics
from emily.memory.service import MemoryService, serve
from emily.memory.store import PgStore
from tests.cognition.conftest import RunningCognition, start_cognition
from tests.conftest import REPO, free_port
from tests.fixtures.llm import RunningInference

pytestmark = pytest.mark.slow
KEYS = Keys("test")
OBSERVE_KEY = OBSERVE.key(KEYS)


@pytest.fixture(scope="module")
def memory_embedder(minilm: Embedder) -> Embedder:
    """The memory service's MiniLM model (the session's shared one)."""
    return minilm


class MemoryProcess:
    """The real memory service on its own Zenoh session (as its own process would be),
    connected to ``connect`` or listening on ``listen``."""

    def __init__(
        self, dsn: str, root: Path, embedder: Embedder, connect: str = "", listen: str = ""
    ) -> None:
        bus = BusConfig(
            node="test",
            listen=(listen,) if listen else (),
            connect=(connect,) if connect else (),
        )
        self.session = open_session(bus)
        cfg = MemoryConfig(state=root, hnsw_m=8, hnsw_ef_construction=32, pool_timeout_s=2.0)
        memory = Memory(cfg, PgStore(dsn, cfg), embedder, metrics=MemoryMetrics())
        self.service: MemoryService = serve(memory, self.session, KEYS, workers=2)

    def close(self) -> None:
        self.service.close()
        self.session.close()


def observe(c: RunningCognition, text: str, **kw: object) -> ObserveReply:
    req = ObserveRequest.model_validate({"text": text, "max_tokens": 16, **kw})
    return call(c.client, OBSERVE_KEY, req, ObserveReply, timeout_s=180)


def recall_texts(session: zenoh.Session, text: str, user: str = "default") -> list[str]:
    reply = call(
        session,
        RECALL.key(KEYS),
        RecallRequest(text=text, k=10, user=user),
        RecallReply,
        timeout_s=30,
    )
    return [h.episode.text for h in reply.hits]


def wait_until_stored(
    session: zenoh.Session, text: str, timeout_s: float = 60.0, user: str = "default"
) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in recall_texts(session, text, user):
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
        # the turn and the answer are in the outbox before the reply is sent
        assert len(cognition.service.cognition.episodes.pending) == 2
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
        assert len(first.service.cognition.episodes.pending) == 2  # the turn, the answer
    finally:
        first.close()
    second = start_cognition(private_reflex)
    try:
        assert len(second.service.cognition.episodes.pending) == 2
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


def test_a_turn_still_in_cognitions_outbox_when_the_user_forgets_it_is_never_stored(
    private_reflex: Reflex, pg_dsn: str, memory_embedder: Embedder, tmp_path: Path
) -> None:
    """The fault: memory is away while the user says something, so the turn and its
    answer wait in cognition's outbox, and cognition is down when the user forgets it;
    the forget finds nothing in Postgres. Cognition restarted on the same state dir then
    delivers its queue: memory withholds the forgotten turn, stores the rest, and the
    outbox lets both go."""
    secret = f"Zarnovel{uuid.uuid4().hex[:6]}"
    first = start_cognition(private_reflex)
    try:
        said = observe(first, f"My locker code is {secret}", allow_llm=False)
        hello = observe(first, "hello", allow_llm=False)
        assert said.trace.episode == hello.trace.episode == "queued"
        assert len(first.service.cognition.episodes.pending) == 4
    finally:
        first.close()
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    memory = MemoryProcess(pg_dsn, tmp_path / "memory", memory_embedder, listen=endpoint)
    try:
        forgot = FORGET.call(memory.session, KEYS, ForgetRequest(match=secret), timeout_s=30)
        assert forgot.forgotten == []  # nothing of it is in Postgres yet
        second = start_cognition(private_reflex, connect=(endpoint,))
        try:
            deadline = time.monotonic() + 60
            while len(second.service.cognition.episodes.pending):  # start-up delivers
                assert time.monotonic() < deadline, "the queued episodes were never delivered"
                time.sleep(0.05)
        finally:
            second.close()
        withheld = memory.service.memory.metrics.withheld._value.get()
    finally:
        memory.close()
    turn = said.trace.episode_id
    assert turn is not None and hello.trace.episode_id is not None
    assert stored_ids(pg_dsn, [turn]) == [] and withheld >= 1
    assert stored_ids(pg_dsn, [hello.trace.episode_id]) == [hello.trace.episode_id]
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT count(*) FROM episodes WHERE text ILIKE %s", (f"%{secret}%",))
        assert row.fetchone() == (0,)


def stored_ids(dsn: str, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Which of ``ids`` have a row in Postgres's episodes, one entry per row."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT id FROM episodes WHERE id = ANY(%s)", (ids,)).fetchall()
    return [r[0] for r in rows]


def test_a_turn_answered_just_before_cognition_is_killed_reaches_memory_once(
    cascade: Reflex,
    reflex_cache: Path,
    private_reflex: Reflex,
    pg_dsn: str,
    memory_embedder: Embedder,
    tmp_path: Path,
) -> None:
    """The fault: cognition is killed with SIGKILL right after it replied, before any
    step that follows a reply ran (:mod:`tests.cognition.stalled_after_reply` holds it
    there). The user saw both turns answered, one served by a worker and one inline by
    the reflex; cognition restarted on the same state dir delivers all four episodes
    (two turns, two answers) to the real memory service: one row each in Postgres."""
    assert cascade.deep is not None  # the models the stalled process loads are cached
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    memory = MemoryProcess(pg_dsn, tmp_path / "memory", memory_embedder, listen=endpoint)
    env = {
        **os.environ,
        "EMILY_BUS__NODE": KEYS.node,
        "EMILY_BUS__LISTEN": "[]",
        "EMILY_BUS__CONNECT": json.dumps([endpoint]),
        "HF_HUB_OFFLINE": "1",
    }
    cmd = [sys.executable, "-m", "tests.cognition.stalled_after_reply", str(reflex_cache)]
    stalled = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)
    second: RunningCognition | None = None
    text = f"My locker number at the pool is {uuid.uuid4().hex[:6]}"
    try:
        assert stalled.stdout is not None and stalled.stdout.readline().strip() == "ready"
        assert wait_for_server(memory.session, OBSERVE_KEY, timeout_s=60)
        said = call(
            memory.session,
            OBSERVE_KEY,
            ObserveRequest(text=text, allow_llm=False),
            ObserveReply,
            timeout_s=180,
        )
        hello = call(
            memory.session, OBSERVE_KEY, ObserveRequest(text="hello"), ObserveReply, timeout_s=180
        )
        assert said.trace.tier != "reflex" and hello.trace.tier == "reflex"
        ids = [
            i
            for r in (said, hello)
            for i in (r.trace.episode_id, r.trace.answer_id)
            if i is not None
        ]
        assert len(ids) == 4 and said.trace.episode == hello.trace.episode == "queued"
        stalled.kill()  # SIGKILL, the replies out and nothing after them run
        assert stalled.wait() == -signal.SIGKILL
        assert stored_ids(pg_dsn, ids) == []  # the crash came before any delivery
        second = start_cognition(private_reflex, connect=(endpoint,))
        deadline = time.monotonic() + 120
        while len(stored_ids(pg_dsn, ids)) < len(ids):
            assert time.monotonic() < deadline, f"stored {stored_ids(pg_dsn, ids)} of {ids}"
            time.sleep(0.2)
        while len(second.service.cognition.episodes.pending):  # the outbox lets them go
            assert time.monotonic() < deadline, "the delivered episodes stayed in the outbox"
            time.sleep(0.05)
    finally:
        if stalled.poll() is None:
            stalled.kill()
            stalled.wait()
        if second is not None:
            second.close()
        memory.close()
    assert sorted(stored_ids(pg_dsn, ids)) == sorted(ids)
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT count(*) FROM episodes WHERE text = %s", (text,)).fetchone()
    assert rows == (1,)


def consolidate(session: zenoh.Session, user: str) -> None:
    """A consolidation pass for ``user`` now, where memory serves one."""
    key = CONSOLIDATE.key(KEYS)
    if wait_for_server(session, key, timeout_s=2):
        call(session, key, ConsolidateRequest(user=user), ConsolidateReply, timeout_s=120)


def tell(c: RunningCognition, text: str, user: str, session: str) -> ObserveReply:
    """Say ``text`` as ``user`` and wait until memory holds it (and its facts)."""
    reply = observe(c, text, user=user, session=session, allow_llm=False)
    wait_until_stored(c.client, text, user=user)
    consolidate(c.client, user)
    return reply


def test_asked_twice_the_answer_is_never_the_question(
    stack: tuple[RunningCognition, MemoryProcess],
) -> None:
    """Every turn is stored, questions too; asking again must not answer with the
    question asked before (it did: "From memory: What is my dog called?")."""
    cognition, _ = stack
    question = "What is my dog called?"
    observe(cognition, "My dog is called Rex", allow_llm=False)
    wait_until_stored(cognition.client, "My dog is called Rex")
    for attempt in range(2):
        reply = observe(cognition, question, allow_llm=False)
        assert question.lower() not in reply.response.lower(), (attempt, reply.response)
        assert "Rex" in reply.response, (attempt, reply.response)
        wait_until_stored(cognition.client, question)  # the question is stored too


def test_answers_follow_the_current_fact_stay_in_scope_and_are_remembered(
    stack: tuple[RunningCognition, MemoryProcess],
) -> None:
    cognition, _ = stack
    ann, bob = f"ann{uuid.uuid4().hex[:6]}", f"bob{uuid.uuid4().hex[:6]}"
    question = "What is my dog called?"
    said = tell(cognition, "My dog is called Rex", ann, "a1")
    assert said.action == "acknowledge" and said.trace.act == "statement"
    assert "Rex" not in said.response  # a statement is acknowledged, not recalled

    asked = observe(cognition, question, user=ann, session="a2")  # the LLM may compose it
    t = asked.trace
    assert t.act == "question" and "Rex" in asked.response, asked
    assert t.cited and t.episode_id == t.cycle_id and t.answer_id not in (None, t.cycle_id)
    assert all(m.text != question for m in t.memories)
    wait_until_stored(cognition.client, asked.response, user=ann)  # the answer is stored

    tell(cognition, "My dog is now called Max", ann, "a3")
    for allow_llm in (False, True):
        now = observe(cognition, question, user=ann, session="a4", allow_llm=allow_llm)
        assert "Max" in now.response and "Rex" not in now.response, (allow_llm, now)
        assert all(f.value != "Rex" for f in now.trace.facts), now.trace.facts

    other = observe(cognition, question, user=bob, session="b1", allow_llm=False)
    assert "Rex" not in other.response and "Max" not in other.response, other
    assert other.trace.memories == [] and other.trace.facts == []

    told = observe(cognition, "What did you tell me about my dog?", user=ann, allow_llm=False)
    assert told.trace.memories and "dog" in told.response.lower(), told
    assert "told you" in told.response.lower()
