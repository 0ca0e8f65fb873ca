"""The schema's migrations against a real Postgres: versioned, each applied once."""

from __future__ import annotations

import psycopg

from emily.memory.migrate import apply_migrations, migrations


def test_migrations_are_versioned_and_idempotent(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        first = apply_migrations(conn)
        second = apply_migrations(conn)
        rows = conn.execute("SELECT version FROM emily_schema_migrations ORDER BY 1").fetchall()
    assert first == [m.version for m in migrations()] and first
    assert second == []
    assert [r[0] for r in rows] == first
