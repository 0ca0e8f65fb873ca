"""``emily serve memory`` as its own process: the embedded Postgres under the state dir,
a clean SIGTERM shutdown, and episodes that survive a restart of the process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from emily.bus import BusConfig, Keys, open_session
from emily.bus.endpoints import RECALL, STATS, STORE
from emily.bus.rpc import call, wait_for_server
from emily.bus.schemas.memory import (
    EpisodeIn,
    RecallReply,
    RecallRequest,
    StatsReply,
    StatsRequest,
    StoreReply,
    StoreRequest,
)
from tests.conftest import free_port

pytestmark = pytest.mark.slow
KEYS = Keys("proc")


def start(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "emily", "serve", "memory"], env=env)


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(120)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    yield dict(
        os.environ,
        EMILY_STATE_DIR=str(tmp_path / "state"),
        EMILY_BUS__NODE="proc",
        EMILY_BUS__LISTEN=json.dumps([endpoint]),
        EMILY_BUS__CONNECT="[]",
        EMILY_MEMORY__METRICS_PORT="0",
        EMILY_MEMORY__L2_CAPACITY="64",
    )


def test_embedded_postgres_survives_a_restart_of_the_service(
    env: dict[str, str], tmp_path: Path
) -> None:
    endpoint = json.loads(env["EMILY_BUS__LISTEN"])[0]
    proc = start(env)
    session = open_session(BusConfig(node="proc", connect=(endpoint,)))
    try:
        assert wait_for_server(session, STORE.key(KEYS), timeout_s=300)
        req = StoreRequest(episodes=[EpisodeIn(text="The lighthouse keeper fed the gulls")])
        stored = call(session, STORE.key(KEYS), req, StoreReply, timeout_s=60)
        assert stored.durable
        for _ in range(2):  # the second recall admits it to L2 (l2_min_accesses = 2)
            call(session, RECALL.key(KEYS), RecallRequest(text="gulls"), RecallReply)
        assert stop(proc) == 0
        assert (tmp_path / "state" / "pg" / "PG_VERSION").is_file()
        assert (tmp_path / "state" / "memory" / "access.npy").is_file()

        proc = start(env)
        assert wait_for_server(session, RECALL.key(KEYS), timeout_s=300)
        got = call(
            session,
            RECALL.key(KEYS),
            RecallRequest(text="seabirds"),
            RecallReply,
            timeout_s=60,
        )
        assert [h.episode.id for h in got.hits] == stored.ids
        assert got.hits[0].tier == "L2"  # the tier files came back too
        stats = call(session, STATS.key(KEYS), StatsRequest(), StatsReply)
        assert stats.episodes == 1
    finally:
        session.close()  # type: ignore[no-untyped-call]
        if proc.poll() is None:
            stop(proc)
