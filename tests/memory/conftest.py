"""Memory-test fixtures: one MiniLM model per test session (slow to load), and a
memory service served over the session's real Zenoh pair (``running``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zenoh

from emily.bus import Keys
from emily.bus.endpoints import served_by
from emily.bus.rpc import wait_for_server
from emily.embed import Embedder
from emily.memory.config import MemoryConfig
from emily.memory.core import Memory
from emily.memory.metrics import MemoryMetrics
from emily.memory.service import MemoryService, serve
from emily.memory.store import PgStore

KEYS = Keys("test")


@pytest.fixture(scope="session")
def embedder(minilm: Embedder) -> Embedder:
    """The real MiniLM-L6 model, shared with the rest of the session."""
    return minilm


@pytest.fixture
def store(pg_dsn: str) -> Iterator[PgStore]:
    """L3 alone on a fresh database, with a small HNSW graph (m=8)."""
    s = PgStore(pg_dsn, MemoryConfig(hnsw_m=8, hnsw_ef_construction=32))
    yield s
    s.close()


@pytest.fixture
def memory(pg_dsn: str, tmp_path: Path) -> Iterator[Memory]:
    """A Memory on real Postgres without an embedder, and no bus (a test file may
    define its own ``memory`` instead)."""
    cfg = MemoryConfig(state=tmp_path / "memory", hnsw_m=8, hnsw_ef_construction=32)
    mem = Memory(cfg, PgStore(pg_dsn, cfg), None, metrics=MemoryMetrics())
    yield mem
    mem.close()


@dataclass
class Running:
    service: MemoryService
    client: zenoh.Session
    cfg: MemoryConfig
    dsn: str


def start(cfg: MemoryConfig, dsn: str, embedder: Embedder, session: zenoh.Session) -> MemoryService:
    memory = Memory(cfg, PgStore(dsn, cfg), embedder, metrics=MemoryMetrics())
    return serve(memory, session, KEYS, workers=2)


@pytest.fixture
def running(
    pg_dsn: str, embedder: Embedder, zenoh_pair: tuple[zenoh.Session, zenoh.Session], tmp_path: Path
) -> Iterator[Running]:
    cfg = MemoryConfig(
        state=tmp_path / "memory",
        l0_capacity=4,
        l1_capacity=8,
        l2_capacity=16,
        l2_min_accesses=1,  # the tests follow moves from the first recall
        pool_timeout_s=1.0,
        hnsw_m=8,
        hnsw_ef_construction=32,
    )
    server_side, client_side = zenoh_pair
    service = start(cfg, pg_dsn, embedder, server_side)
    for endpoint in served_by("memory"):
        assert wait_for_server(client_side, endpoint.key(KEYS), timeout_s=10)
    r = Running(service, client_side, cfg, pg_dsn)
    yield r
    r.service.close()
