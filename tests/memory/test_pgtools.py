"""Postgres's programs run for the embedded server: output through a file, errors that
say what to do."""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

import pytest

from emily.memory import pgtools
from emily.memory.errors import StoreUnavailable


def test_a_tools_stdout_and_stderr_both_come_back() -> None:
    done = pgtools.run_tool(["sh", "-c", "echo out; echo err >&2; exit 3"], None)
    assert done.returncode == 3
    assert done.stdout.split() == ["out", "err"]


def test_a_missing_tool_names_the_bin_dir_setting(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match=pgtools.BIN_ENV):
        pgtools.run_tool([tmp_path / "initdb"], None)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the tools as another user")
def test_as_root_a_tool_runs_as_the_server_user() -> None:
    user = pgtools.server_user()
    done = pgtools.run_tool(["id", "-u"], user)
    assert int(done.stdout) == pwd.getpwnam(user).pw_uid != 0


def test_no_postgres_on_path_lists_the_ways_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(StoreUnavailable, match="EMILY_MEMORY__DSN"):
        pgtools.bindir_on_path()


def pg_ctl_bindir() -> Path | None:
    """The bin dir of a real ``pg_ctl``: pgserver's, else the one on PATH."""
    try:
        import pgserver
    except ImportError:
        found = shutil.which("pg_ctl")
        return Path(found).parent if found else None
    return Path(pgserver.__file__).parent / "pginstall" / "bin"


@pytest.mark.skipif(pg_ctl_bindir() is None, reason="no pg_ctl")
def test_stopping_a_data_dir_with_no_server_says_what_pg_ctl_said(tmp_path: Path) -> None:
    bindir = pg_ctl_bindir()
    assert bindir is not None
    user = pgtools.server_user() if os.geteuid() == 0 else None  # pg_ctl refuses root
    with pytest.raises(StoreUnavailable, match="could not stop") as err:
        pgtools.pg_ctl_stop(bindir, tmp_path / "data", user)
    said = str(err.value).split("\n", 1)[1]  # after our line, pg_ctl's own words
    assert said.startswith("pg_ctl: ") and str(tmp_path / "data") in said
