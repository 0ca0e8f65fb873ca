"""Versioned, idempotent SQL migrations from ``emily/memory/migrations/NNNN_<name>.sql``.

The same files serve the NixOS host. Each file is applied once, in its own transaction,
under an advisory lock so two processes starting together do not race; applied versions
are recorded in ``emily_schema_migrations``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from emily.memory.errors import MigrationError

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x656D696C79  # "emily"


@dataclass(frozen=True)
class Migration:
    """One migration file: ``version`` from its ``NNNN`` prefix."""

    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    found = []
    for entry in resources.files("emily.memory.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {versions}; renumber the files")
    return found


def apply_migrations(conn: psycopg.Connection[tuple[object, ...]]) -> list[int]:
    """Apply the migrations ``conn``'s database lacks; returns the versions applied now."""
    applied_now: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS emily_schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = conn.execute("SELECT version FROM emily_schema_migrations").fetchall()
        done = {int(str(r[0])) for r in rows}
        for mig in migrations():
            if mig.version in done:
                continue
            try:
                conn.execute(mig.sql.encode())
            except psycopg.Error as exc:
                raise MigrationError(
                    f"migration {mig.version:04d}_{mig.name}.sql failed: {exc}; fix the file "
                    "or the database and restart"
                ) from exc
            conn.execute(
                "INSERT INTO emily_schema_migrations (version, name) VALUES (%s, %s)",
                (mig.version, mig.name),
            )
            applied_now.append(mig.version)
    return applied_now
