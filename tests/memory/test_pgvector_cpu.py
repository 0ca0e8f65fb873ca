"""The pgvector probe against a real Postgres: a server whose pgvector runs passes, and
one whose backend dies during the probe is refused with what to do, and stopped."""

from __future__ import annotations

from pathlib import Path

import pytest

from emily.memory import pgvector_cpu
from emily.memory.embedded import EmbeddedPostgres
from emily.memory.pgvector_cpu import PgvectorCrashed, check
from emily.memory.postgres_watch import process_alive


def test_the_test_servers_pgvector_runs_every_operation_of_the_probe(pg_dsn: str) -> None:
    check(pg_dsn)


def test_the_probe_rolls_back_what_it_made(pg_dsn: str) -> None:
    import psycopg

    check(pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone()
    assert row == (0,)  # a fresh database: the probe's CREATE EXTENSION was rolled back


def test_injected_sigill_in_a_backend_refuses_the_server_and_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backend running the probe is sent SIGILL, as a pgvector built for AVX-512 gets
    on a CPU without it: Postgres resets every session and recovers; the embedded server
    is refused with a message naming the CPU and the fix, then stopped."""
    # COPY TO PROGRAM runs `sh -c` as a child of the backend: its $PPID is the backend.
    crash = "COPY (SELECT 1) TO PROGRAM 'kill -ILL $PPID'"
    monkeypatch.setattr(pgvector_cpu, "PROBE", (*pgvector_cpu.PROBE[:3], crash))
    datadir = tmp_path / "pg" / "data"
    with pytest.raises(PgvectorCrashed, match="AVX-512") as raised:
        EmbeddedPostgres(datadir)
    assert "python -m emily.memory.pgvector_build" in str(raised.value)
    pid_file = datadir / "postmaster.pid"
    assert not pid_file.exists() or not process_alive(int(pid_file.read_text().split()[0]))
    log = (datadir / "log").read_text()
    crashed = log.index("terminated by signal 4")
    # refused only once the crash recovery was over, so the stop was answered
    assert "ready to accept connections" in log[crashed:]
    assert "database system is shut down" in log[crashed:]


def test_an_unreachable_server_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    from emily.memory.errors import StoreUnavailable

    with pytest.raises(StoreUnavailable) as raised:
        check(f"postgresql://postgres@/postgres?host={tmp_path}&connect_timeout=2")
    assert not isinstance(raised.value, PgvectorCrashed)
