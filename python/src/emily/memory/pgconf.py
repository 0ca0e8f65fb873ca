"""Server settings of the embedded Postgres, from ``pgconf.toml``.

They go into ``<data dir>/emily.conf``, which ``postgresql.conf`` includes, so
``ALTER SYSTEM`` (``postgresql.auto.conf``, read later) still overrides any of them: the
benchmarks' own settings stay in force and no two writers fight over one value.
:func:`pending` says which of them the running server does not have yet, and whether
that takes a reload or a restart.
"""

from __future__ import annotations

import os
import pwd
import tomllib
from importlib import resources
from pathlib import Path

import psycopg

CONF = "emily.conf"
_INCLUDE = f"include_if_exists = '{CONF}'"


def _memory_bytes() -> int:
    """Physical memory of this machine, in bytes."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _size(mb: int) -> str:
    """``mb`` megabytes the way ``SHOW`` prints it (``2GB``, ``640MB``)."""
    return f"{mb // 1024}GB" if mb % 1024 == 0 else f"{mb}MB"


def settings(memory_bytes: int | None = None) -> dict[str, str]:
    """The settings, with ``shared_buffers`` sized to ``memory_bytes`` (this machine's).

    Returns
    -------
    dict
        ``{name: value}`` with values in ``SHOW``'s form.
    """
    data = tomllib.loads(resources.files("emily.memory").joinpath("pgconf.toml").read_text())
    sb = data["shared_buffers"]
    total_mb = (memory_bytes if memory_bytes is not None else _memory_bytes()) // 2**20
    mb = int(min(max(total_mb * sb["fraction"], sb["min_mb"]), sb["max_mb"]))
    return {"shared_buffers": _size(mb), **{k: str(v) for k, v in data["settings"].items()}}


def install(datadir: Path, user: str | None, values: dict[str, str] | None = None) -> None:
    """Write ``emily.conf`` into ``datadir`` and include it from ``postgresql.conf``.

    Parameters
    ----------
    datadir : the data directory (after ``initdb``).
    user : the server's user when it is not this process's (files are handed to it).
    values : the settings; default :func:`settings`.
    """
    body = "".join(
        f"{k} = '{v}'\n" for k, v in sorted((values if values is not None else settings()).items())
    )
    conf = datadir / CONF
    text = f"# written by emily.memory.pgconf from pgconf.toml\n{body}"
    if not conf.exists() or conf.read_text() != text:
        conf.write_text(text)
    main = datadir / "postgresql.conf"
    if _INCLUDE not in main.read_text().splitlines():
        with main.open("a") as fh:
            fh.write(f"\n{_INCLUDE}\n")
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(conf, entry.pw_uid, entry.pw_gid)


def pending(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, bool]:
    """Settings of ``emily.conf`` in force in the files but not in the server.

    A setting that a later file (``ALTER SYSTEM``) overrides is not ours to apply.

    Returns
    -------
    dict
        ``{name: needs_restart}``: ``True`` when the setting only takes effect at start.
    """
    rows = conn.execute(
        "SELECT f.name, f.setting, current_setting(f.name), s.context = 'postmaster' "
        "FROM (SELECT DISTINCT ON (name) name, setting, sourcefile FROM pg_file_settings "
        "      ORDER BY name, seqno DESC) f JOIN pg_settings s USING (name) "
        "WHERE f.sourcefile LIKE %s",
        (f"%/{CONF}",),
    ).fetchall()
    return {str(name): bool(restart) for name, want, now, restart in rows if want != now}
