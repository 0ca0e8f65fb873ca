"""The path backend's data directory: where its socket goes, and what ``postmaster.pid``
says about the server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from emily.memory import pgdata


def test_a_short_data_dir_holds_its_socket(tmp_path: Path) -> None:
    assert pgdata.socket_dir(tmp_path / "data") == tmp_path / "data"


def test_a_long_data_dir_gets_a_private_socket_dir_of_its_own(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "data"
    other = tmp_path / ("d" * 60) / ("e" * 60) / "data2"
    sock = pgdata.socket_dir(deep)
    assert sock != deep and sock == pgdata.socket_dir(deep)  # the same one every time
    assert sock != pgdata.socket_dir(other)
    assert len(os.fsencode(sock / f".s.PGSQL.{pgdata.PORT}")) <= 100


def _pidfile(datadir: Path, pid: int, status: str) -> None:
    """A ``postmaster.pid`` as Postgres writes it: pid, data dir, start time, port,
    socket dir, listen address, shared memory key, status."""
    datadir.mkdir(exist_ok=True)
    lines = [str(pid), str(datadir), "1700000000", "5432", str(datadir), "", "0 0", status]
    (datadir / "postmaster.pid").write_text("\n".join(lines) + "\n")


def test_a_ready_live_postmaster_is_running(tmp_path: Path) -> None:
    assert pgdata.running_pid(tmp_path) is None  # no postmaster.pid
    _pidfile(tmp_path, os.getpid(), "starting")
    assert pgdata.running_pid(tmp_path) is None  # not accepting connections yet
    _pidfile(tmp_path, os.getpid(), "ready   ")
    assert pgdata.running_pid(tmp_path) == os.getpid()


def test_a_stale_postmaster_pid_is_not_running(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])
    child.wait()  # reaped: its pid names no process now
    _pidfile(tmp_path, child.pid, "ready")
    assert pgdata.running_pid(tmp_path) is None


@pytest.mark.skipif(os.geteuid() == 0, reason="as root the dir is chowned to the server user")
def test_own_dir_is_private_to_this_user(tmp_path: Path) -> None:
    pgdata.own_dir(tmp_path / "data", None)
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
