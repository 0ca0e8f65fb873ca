"""The embedded Postgres is watched: killed with SIGKILL mid-ingest, it is restarted by the
memory service's watcher, and nothing of the ingest is lost or stored twice. A zombie
postmaster counts as dead."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

from emily.bus import endpoints
from emily.bus.rpc import RequestFailed, call
from emily.bus.schemas.memory import (
    EpisodeIn,
    RecallFilters,
    RecallReply,
    RecallRequest,
    StatsReply,
    StatsRequest,
    StoreReply,
    StoreRequest,
)
from emily.memory.embedded import EmbeddedPostgres
from emily.memory.postgres_watch import process_alive
from tests.memory.conftest import KEYS, Running
from tests.memory.helpers import clustered

STORE, RECALL, STATS = (e.key(KEYS) for e in (endpoints.STORE, endpoints.RECALL, endpoints.STATS))
N, BATCH = 10_000, 200


def error_code(fn: object) -> str | None:
    try:
        fn()  # type: ignore[operator]
    except RequestFailed as exc:
        return exc.reply.code
    return None


def test_a_zombie_is_not_alive() -> None:
    """An exited child not yet reaped (what pgserver once took for a running postmaster)."""
    child = subprocess.Popen(["sleep", "60"])
    assert process_alive(child.pid)
    child.kill()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, still unreaped
    assert not process_alive(child.pid)
    child.wait()
    assert not process_alive(child.pid)


@pytest.mark.slow
def test_injected_sigkill_of_postmaster_during_ingest_is_restarted_exactly_once(
    pg_server: EmbeddedPostgres, running: Running
) -> None:
    """The fault: ``kill -9`` of the embedded Postgres' postmaster after a fifth of an
    ingest of 10,000 episodes (embeddings sent with them; ids assigned by memory)."""
    memory = running.service.memory
    memory.start_background(period_s=0.2)  # the service's outbox retry loop
    watch = pg_server.watch(period_s=2.0, max_backoff_s=2.0)
    vecs = clustered(N, seed=7)
    reqs = [
        StoreRequest(
            episodes=[
                EpisodeIn(text=f"ingest {i}", embedding=vecs[i].tolist())
                for i in range(b, b + BATCH)
            ]
        )
        for b in range(0, N, BATCH)
    ]
    replies: list[StoreReply] = []
    fifth = threading.Event()

    def ingest() -> None:
        for n, req in enumerate(reqs):
            replies.append(call(running.client, STORE, req, StoreReply, timeout_s=120))
            if n == len(reqs) // 5:
                fifth.set()

    try:
        worker = threading.Thread(target=ingest)
        worker.start()
        assert fifth.wait(300)
        pid = pg_server.pid
        os.kill(pid, signal.SIGKILL)  # the fault
        # while it is down, recall and stats say so instead of answering made-up figures
        # (probed until the backends have noticed their postmaster is gone)
        probes = {
            "stats": lambda: call(running.client, STATS, StatsRequest(), StatsReply),
            "recall": lambda: call(
                running.client,
                RECALL,
                RecallRequest(vector=vecs[0].tolist(), k=3, filters=RecallFilters(source="x")),
                RecallReply,
            ),
        }
        for name, probe in probes.items():
            code = None
            while code is None and watch.restarts == 0:
                code = error_code(probe)
            assert code == "unavailable", f"{name} answered {code} while Postgres was down"
        worker.join(600)
        assert len(replies) == len(reqs)
        deadline = time.monotonic() + 120
        while (watch.restarts == 0 or memory.outbox.pending()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert watch.restarts >= 1 and pg_server.pid != pid and pg_server.alive()
        assert memory.outbox.pending() == 0
        assert not all(r.durable for r in replies)  # some went through the outbox
        sent = {i for r in replies for i in r.ids}
        assert len(sent) == N
        with psycopg.connect(running.dsn) as conn:
            row = conn.execute("SELECT count(*), count(DISTINCT id) FROM episodes").fetchone()
            stored = {r[0] for r in conn.execute("SELECT id FROM episodes")}
        assert row == (N, N) and stored == sent  # every episode, exactly once
        assert call(running.client, STATS, StatsRequest(), StatsReply).episodes == N
    finally:
        watch.stop()


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="as another user the server runs as that user")
def test_a_data_dir_parent_closed_to_0700_still_lets_root_stop_and_start(
    tmp_path: Path,
) -> None:
    """As root, pgserver runs the server as its own user, which must pass through every
    parent of the data dir; a concurrent pytest session resets its base to 0700."""
    outer = tmp_path / "outer"
    pg = EmbeddedPostgres(outer / "pg" / "data", stop_on_exit=False)
    try:
        outer.chmod(0o700)
        pg.stop()
        outer.chmod(0o700)
        pg.start()
        with psycopg.connect(pg.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pg.stop()
