"""k-NN and its search settings against a real Postgres + pgvector: HNSW against exact
search, selective filters, settings cached per connection."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from emily.bus.schemas.memory import RecallFilters
from emily.memory.config import MemoryConfig
from emily.memory.store import PgStore
from tests.memory.helpers import T0, records


def test_hnsw_matches_exact_search(store: PgStore) -> None:
    recs = records(500)
    store.insert(recs)
    hits = overlap = 0
    for r in recs[:20]:
        exact = [i for i, _ in store.search(r.embedding, 10, exact=True)]
        approx = store.search(r.embedding, 10, ef_search=100)
        assert approx[0][0] == r.id and approx[0][1] == pytest.approx(1.0, abs=1e-5)
        assert [s for _, s in approx] == sorted((s for _, s in approx), reverse=True)
        overlap += len(set(exact) & {i for i, _ in approx})
        hits += 10
    assert overlap / hits >= 0.95


@pytest.mark.parametrize("storage", ["vector", "halfvec"])
def test_selective_filters_still_return_k(pg_dsn: str, storage: str) -> None:
    cfg = MemoryConfig(storage=storage, ef_search=10, hnsw_m=8, hnsw_ef_construction=32)  # type: ignore[arg-type]
    store = PgStore(pg_dsn, cfg)
    try:
        recs = records(1000)
        store.insert(recs)
        query = recs[0].embedding
        # 1% selectivity: context i in {..}; only 10 rows match, all must come back
        f = RecallFilters(source="other", min_valence=0.9)
        want = [r for r in recs if r.source == "other" and np.float32(r.valence) >= np.float32(0.9)]
        got = store.search(query, 10, f)
        assert len(got) == min(10, len(want))
        assert {i for i, _ in got} <= {r.id for r in want}
        window = RecallFilters(since=T0.replace(day=10), until=T0.replace(day=12))
        got = store.search(query, 10, window)
        assert len(got) == 10
        fetched = store.fetch([i for i, _ in got])
        assert all(window.since <= fetched[i].ts < window.until for i, _ in got)  # type: ignore[operator]
        ctx = store.search(query, 5, RecallFilters(context={"even": True}))
        assert len(ctx) == 5 and all(store.fetch([i])[i].context["even"] for i, _ in ctx)
    finally:
        store.close()


def _settings(conn: psycopg.Connection) -> tuple[str, str]:
    row = conn.execute(
        "SELECT current_setting('hnsw.ef_search'), current_setting('hnsw.iterative_scan')"
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_search_settings_follow_each_query_on_a_reused_connection(store: PgStore) -> None:
    """Settings are cached per connection and re-sent only on change: each query must
    still run with its own ef_search and iterative-scan mode."""
    recs = records(50)
    store.insert(recs)
    q = recs[0].embedding
    since = RecallFilters(since=T0)
    with store.connection() as conn:
        store.search(q, 5, ef_search=40, conn=conn)
        assert _settings(conn) == ("40", "off")
        store.search(q, 5, ef_search=40, conn=conn)  # cached: nothing re-sent, still right
        assert _settings(conn) == ("40", "off")
        store.search(q, 5, since, ef_search=120, conn=conn)
        assert _settings(conn) == ("120", "relaxed_order")
        store.search(q, 5, ef_search=40, conn=conn)
        assert _settings(conn) == ("40", "off")
        store.search(q, 50, ef_search=10, conn=conn)  # ef is never below k
        assert _settings(conn)[0] == "50"


def test_settings_inside_a_rolled_back_transaction_are_not_trusted(store: PgStore) -> None:
    recs = records(20)
    store.insert(recs)
    q = recs[0].embedding
    with store.connection() as conn:
        store.search(q, 5, ef_search=40, conn=conn)
        with pytest.raises(RuntimeError), conn.transaction():
            store.search(q, 5, ef_search=200, conn=conn)
            raise RuntimeError("roll back on purpose")
        assert _settings(conn)[0] == "40"  # the rollback undid 200 (set_config is transactional)
        store.search(q, 5, ef_search=200, conn=conn)
        assert _settings(conn)[0] == "200"  # so it must be sent again, not taken from a cache
