"""The embedded Postgres' server settings: sized to the machine, in force, reapplied."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator

import psycopg
import pytest

from emily.memory import pgconf
from emily.memory.embedded import EmbeddedPostgres


def test_shared_buffers_is_an_eighth_of_memory_within_bounds() -> None:
    gb = 2**30
    assert pgconf.settings(gb)["shared_buffers"] == "128MB"  # the floor
    assert pgconf.settings(8 * gb)["shared_buffers"] == "1GB"
    assert pgconf.settings(12 * gb)["shared_buffers"] == "1536MB"
    assert pgconf.settings(64 * gb)["shared_buffers"] == "2GB"  # the cap
    assert pgconf.settings(8 * gb)["max_wal_size"] == "2GB"


def _show(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        return {k: conn.execute(f"SHOW {k}").fetchone()[0] for k in pgconf.settings()}


def test_the_embedded_server_runs_with_the_settings(pg_server: EmbeddedPostgres) -> None:
    """pgserver made the data dir and started it on its defaults; the settings that need a
    restart (shared_buffers, wal_buffers) must be in force all the same."""
    pg_server.start()
    assert _show(pg_server.dsn) == pgconf.settings()
    with psycopg.connect(pg_server.dsn) as conn:
        assert pgconf.pending(conn) == {}


@pytest.fixture
def conf(pg_server: EmbeddedPostgres) -> Iterator[tuple[EmbeddedPostgres, str | None]]:
    """The session server and its user; its emily.conf is restored afterwards."""
    pg_server.start()
    owner = pwd.getpwuid(pg_server.datadir.stat().st_uid).pw_name
    user = None if owner == pwd.getpwuid(os.geteuid()).pw_name else owner
    yield pg_server, user
    pgconf.install(pg_server.datadir, user)


def test_changed_settings_are_seen_as_pending(conf: tuple[EmbeddedPostgres, str | None]) -> None:
    server, user = conf
    changed = {**pgconf.settings(), "checkpoint_timeout": "16min", "shared_buffers": "256MB"}
    pgconf.install(server.datadir, user, changed)
    with psycopg.connect(server.dsn) as conn:
        assert pgconf.pending(conn) == {"checkpoint_timeout": False, "shared_buffers": True}
    pgconf.install(server.datadir, user)
    with psycopg.connect(server.dsn) as conn:
        assert pgconf.pending(conn) == {}


def test_alter_system_wins_and_a_new_handle_does_not_restart(
    conf: tuple[EmbeddedPostgres, str | None],
) -> None:
    """The benchmarks set shared_buffers with ALTER SYSTEM: that must not make every
    start restart the server to put ours back."""
    server, _ = conf
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET checkpoint_timeout = '20min'")
        conn.execute("SELECT pg_reload_conf()")
    try:
        with psycopg.connect(server.dsn) as conn:
            assert "checkpoint_timeout" not in pgconf.pending(conn)
        before = server.pid
        again = EmbeddedPostgres(server.datadir, stop_on_exit=False)
        assert again.pid == before
    finally:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET checkpoint_timeout")
            conn.execute("SELECT pg_reload_conf()")
