"""Cognition fixtures: trained reflex models shared per session, and the real service."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zenoh

from emily.bus import BusConfig, Keys, open_session
from emily.bus.endpoints import OBSERVE, RECALL
from emily.bus.health import announce
from emily.bus.rpc import Server, wait_for_server
from emily.bus.schemas.memory import RecallReply, RecallRequest
from emily.cognition.config import CognitionConfig
from emily.cognition.reflex import MiniLMFeatures, Reflex, ReflexModel
from emily.cognition.reflex.cascade import DEEP_CONFIG
from emily.cognition.reflex.features import HashedNgrams
from emily.cognition.reflex.train import TrainConfig
from emily.cognition.service import CognitionService
from tests.conftest import free_port


@pytest.fixture(scope="session")
def reflex_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory where trained reflex models are cached for the whole session."""
    return tmp_path_factory.mktemp("reflex-cache")


@pytest.fixture(scope="session")
def fast_reflex(reflex_cache: Path) -> ReflexModel:
    """The n-gram spiking reflex, trained once per session."""
    return ReflexModel.load_or_build(reflex_cache, TrainConfig(), HashedNgrams(), "ngrams")


@pytest.fixture(scope="session")
def embedder() -> MiniLMFeatures:
    """The real MiniLM model, loaded offline once per session."""
    return MiniLMFeatures()


@pytest.fixture(scope="session")
def cascade(reflex_cache: Path, fast_reflex: ReflexModel, embedder: MiniLMFeatures) -> Reflex:
    """Both reflex stages (n-grams, then MiniLM)."""
    deep = ReflexModel.load_or_build(reflex_cache, DEEP_CONFIG, embedder, "minilm")
    return Reflex(fast_reflex, deep, embedder)


@pytest.fixture
def private_reflex(cascade: Reflex, tmp_path: Path) -> Reflex:
    """Both stages, with a private copy of the fast one (STDP may change its weights)."""
    cascade.fast.save(tmp_path / "fast.npz")
    return Reflex(ReflexModel.load(tmp_path / "fast.npz"), cascade.deep, cascade.embedder)


@dataclass
class RunningCognition:
    """A cognition service on the bus and a client session connected to it."""

    service: CognitionService
    client: zenoh.Session
    endpoint: str

    def close(self) -> None:
        self.client.close()
        self.service.close()


def start_cognition(
    reflex: Reflex,
    *,
    connect: tuple[str, ...] = (),
    http: bool = False,
    node: str = "test",
    **settings: Any,
) -> RunningCognition:
    """Start the real service listening on a free loopback port, plus a client session."""
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    bus = BusConfig(node=node, listen=(endpoint,), connect=connect)
    cfg = CognitionConfig(http_port=free_port(), **settings)
    service = CognitionService(cfg, bus, reflex, http=http)
    client = open_session(BusConfig(node=node, listen=(), connect=(endpoint,)))
    assert wait_for_server(client, OBSERVE.key(bus.keys), timeout_s=10)
    return RunningCognition(service, client, endpoint)


@pytest.fixture
def cognition(private_reflex: Reflex) -> Iterator[RunningCognition]:
    """The cognition service alone: memory and inference are really absent."""
    running = start_cognition(private_reflex, http=True)
    yield running
    running.close()


@pytest.fixture
def injected_slow_memory(cognition: RunningCognition) -> Iterator[list[RecallRequest]]:
    """A fault injected on purpose: a memory recall queryable that answers after 3 s."""
    seen: list[RecallRequest] = []

    def slow(req: RecallRequest) -> RecallReply:
        seen.append(req)
        time.sleep(3.0)
        return RecallReply(hits=[], took_ms=3000.0)

    key = RECALL.key(Keys("test"))
    server = Server(cognition.client, key, RecallRequest, slow, workers=8)
    token = announce(cognition.client, Keys("test"), "memory")
    assert cognition.service.peers.wait("memory", 10)
    yield seen
    token.undeclare()
    server.close()
