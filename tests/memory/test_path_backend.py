"""The PATH backend of :class:`EmbeddedPostgres`: ``initdb``/``pg_ctl`` from a bin dir.

This is the backend the Nix test environment runs on (nixpkgs' postgresql with pgvector,
no pgserver wheel). Off Nix it is forced here with the pgserver wheel's own binaries,
so both machines test the same code against a real Postgres + pgvector. As root the
server runs as the unprivileged ``pgserver`` user, like pgserver does it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from emily.memory import pgconf
from emily.memory.config import MemoryConfig
from emily.memory.embedded import BIN_ENV, EmbeddedPostgres
from emily.memory.errors import StoreUnavailable
from emily.memory.store import PgStore
from tests.memory.helpers import records

CFG = MemoryConfig(hnsw_m=8, hnsw_ef_construction=16)


def wheel_or_path_bindir() -> Path | None:
    """pgserver's bin dir when the wheel is installed; ``None`` (env or PATH) under Nix."""
    try:
        import pgserver
    except ImportError:
        return None
    return Path(pgserver.__file__).parent / "pginstall" / "bin"


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """A directory outside pytest's basetemp, which a concurrent session may lock to 0700."""
    root = Path(tempfile.mkdtemp(prefix="emily-pgpath-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def server(scratch: Path) -> Iterator[EmbeddedPostgres]:
    """One PATH-backend server for the module, stopped at the end."""
    pg = EmbeddedPostgres(scratch / "data", bindir=wheel_or_path_bindir())
    yield pg
    pg.stop()


def test_the_path_backend_runs_with_pgvector(server: EmbeddedPostgres) -> None:
    assert server.backend == "path"
    assert "host=" in server.dsn and "@/" in server.dsn  # unix socket, no TCP host
    with psycopg.connect(server.dsn) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        assert row.fetchone() == (1,)


def test_the_settings_are_in_force_from_the_first_start(server: EmbeddedPostgres) -> None:
    """initdb, then emily.conf, then the first start: no restart needed for any setting."""
    with psycopg.connect(server.dsn) as conn:
        shown = {k: conn.execute(f"SHOW {k}").fetchone()[0] for k in pgconf.settings()}
        assert shown == pgconf.settings()
        assert pgconf.pending(conn) == {}
        started = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
    again = EmbeddedPostgres(server.datadir, bindir=wheel_or_path_bindir(), stop_on_exit=False)
    with psycopg.connect(again.dsn) as conn:  # a second handle: configured, not restarted
        assert conn.execute("SELECT pg_postmaster_start_time()").fetchone() == started


def test_injected_crash_keeps_stored_episodes(server: EmbeddedPostgres) -> None:
    """Migrate, store, recall; crash it (SIGQUIT), restart, and everything is still there."""
    store = PgStore(server.dsn, CFG)  # applies the migrations: CREATE EXTENSION vector
    recs = records(50, seed=3)
    try:
        assert store.insert(recs) == 50
        hits = store.search(recs[7].embedding, 3)
        assert hits[0][0] == recs[7].id and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    finally:
        store.close()
    before = server.pid
    server.kill()  # the fault: immediate shutdown, no checkpoint
    server.start()  # crash recovery
    assert server.pid != before
    store = PgStore(server.dsn, CFG)
    try:
        got = store.fetch([r.id for r in recs])
        assert {k: v.text for k, v in got.items()} == {r.id: r.text for r in recs}
        assert store.search(recs[31].embedding, 1)[0][0] == recs[31].id
    finally:
        store.close()


def test_a_new_handle_reuses_the_data_dir(
    server: EmbeddedPostgres, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped cleanly, the data dir is started again by a second handle (bin dir from env)."""
    store = PgStore(server.dsn, CFG)
    recs = records(5, seed=11)
    try:
        store.insert(recs)
    finally:
        store.close()
    server.stop()
    with pytest.raises(StoreUnavailable, match="not running"):
        _ = server.pid
    bindir = wheel_or_path_bindir()
    if bindir is not None:
        monkeypatch.setenv(BIN_ENV, str(bindir))
    again = EmbeddedPostgres(scratch / "data")
    assert again.backend == "path" and again.dsn == server.dsn
    store = PgStore(again.dsn, CFG)
    try:
        assert len(store.fetch([r.id for r in recs])) == 5
    finally:
        store.close()
    server.start()  # no-op: the second handle's server is the same one
    assert server.pid == again.pid


def test_a_long_data_dir_gets_its_socket_elsewhere(scratch: Path) -> None:
    """A data dir too deep for a unix socket path puts the socket in a private temp dir."""
    datadir = scratch / ("d" * 60) / ("e" * 60) / "data"
    datadir.parent.mkdir(parents=True)
    pg = EmbeddedPostgres(datadir, bindir=wheel_or_path_bindir())
    try:
        assert not str(pg.dsn).startswith(f"postgresql://postgres@/postgres?host={datadir}")
        with psycopg.connect(pg.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pg.stop()


def test_a_missing_bin_dir_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match=BIN_ENV):
        EmbeddedPostgres(tmp_path / "data", bindir=tmp_path / "no-postgres-here")


def postgres_without_pgvector() -> Path | None:
    """A Debian Postgres bin dir whose installation lacks pgvector, when there is one."""
    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin")):
        share = Path("/usr/share/postgresql") / bindir.parent.name / "extension"
        if (bindir / "initdb").exists() and not (share / "vector.control").exists():
            return bindir
    return None


@pytest.mark.skipif(postgres_without_pgvector() is None, reason="no Postgres without pgvector")
def test_a_postgres_without_pgvector_is_refused(scratch: Path) -> None:
    bindir = postgres_without_pgvector()
    assert bindir is not None
    with pytest.raises(StoreUnavailable, match=r"withPackages \(p: \[ p.pgvector \]\)"):
        EmbeddedPostgres(scratch / "plain", bindir=bindir)
