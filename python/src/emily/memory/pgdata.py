"""The data directory of the embedded ``path`` backend, and the extension it needs.

A data dir is made once by ``initdb`` (UTF-8, C locale, trust auth for the local user
``postgres``), owned by the server's user and mode 0700. The server's unix socket
lives in it unless the path would be too long for a socket address. ``postmaster.pid``
tells whether a server runs on it; :func:`require_pgvector` checks that the server can
load pgvector, which the first migration creates.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import stat
import tempfile
from pathlib import Path

import psycopg

from emily.memory.errors import StoreUnavailable
from emily.memory.pgtools import BIN_ENV, run_tool

PORT = 5432  # names the socket file only: no TCP listener is opened
_SOCKET_MAX = 100  # bytes of a socket path; sun_path holds 108 on Linux, 104 on macOS


def socket_dir(datadir: Path) -> Path:
    """``datadir``, or a private dir under the temp dir when its path is too long."""
    if len(os.fsencode(datadir / f".s.PGSQL.{PORT}")) <= _SOCKET_MAX:
        return datadir
    digest = hashlib.sha256(os.fsencode(datadir)).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"emily-pg-{digest}"


def own_dir(path: Path, user: str | None) -> None:
    """Create ``path`` (mode 0700) owned by ``user`` (``None``: this process's), reachable
    by it."""
    path.mkdir(mode=0o700, exist_ok=True)
    if user is None:
        return
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for parent in path.parents:  # search permission only: the user cannot list them
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def initdb(bindir: Path, datadir: Path, user: str | None) -> None:
    """Make a fresh data dir at ``datadir`` with ``bindir``'s ``initdb``, as ``user``.

    Raises
    ------
    StoreUnavailable
        initdb failed; its output is in the message.
    """
    own_dir(datadir, user)
    init = [bindir / "initdb", "-D", datadir, "-U", "postgres", "--auth=trust"]
    flags = ["--encoding=UTF8", "--locale=C", "--no-instructions"]
    out = run_tool([*init, *flags], user)
    if out.returncode != 0:
        raise StoreUnavailable(
            f"initdb failed on {datadir}:\n{out.stdout}\nRemove the directory if it is "
            "a half-made data dir, or check that its Postgres installation is whole"
        )


def running_pid(datadir: Path) -> int | None:
    """The postmaster's pid from ``postmaster.pid`` when it is alive and ready."""
    try:
        lines = (datadir / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 8 or lines[7].strip() != "ready":
        return None
    pid = int(lines[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, run by another user
        pass
    return pid


def require_pgvector(dsn: str, bindir: Path) -> None:
    """Raise :class:`StoreUnavailable` unless the server can ``CREATE EXTENSION vector``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
    if not row or not row[0]:
        raise StoreUnavailable(
            f"the Postgres in {bindir} has no pgvector extension, which the memory schema "
            "needs: use one built with it (nixpkgs: postgresql.withPackages (p: [ p.pgvector ])) "
            f"and point {BIN_ENV} at its bin dir, or install emily[embedded]"
        )
