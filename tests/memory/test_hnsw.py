"""The HNSW index against a real Postgres + pgvector: rebuilt when its parameters change."""

from __future__ import annotations

from dataclasses import replace

import psycopg

from emily.memory.config import MemoryConfig
from emily.memory.store import PgStore


def test_changed_index_parameters_rebuild_the_index(pg_dsn: str) -> None:
    cfg = MemoryConfig(hnsw_m=8, hnsw_ef_construction=32)
    PgStore(pg_dsn, cfg).close()
    store = PgStore(pg_dsn, replace(cfg, hnsw_m=12))
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(
            "SELECT reloptions FROM pg_class WHERE relname = %s", (store.index_name,)
        ).fetchone()
    store.close()
    assert row is not None and "m=12" in row[0]
