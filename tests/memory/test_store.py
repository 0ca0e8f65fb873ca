"""L3 against a real Postgres + pgvector: migrations, COPY ingest, HNSW and filters."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import psycopg
import pytest

from emily.bus.schemas.memory import RecallFilters
from emily.memory.config import MemoryConfig
from emily.memory.errors import StoreUnavailable
from emily.memory.migrate import apply_migrations, migrations
from emily.memory.pgcopy import InvalidRecord
from emily.memory.store import PgStore
from tests.memory.helpers import T0, records


@pytest.fixture
def store(pg_dsn: str) -> PgStore:
    s = PgStore(pg_dsn, MemoryConfig(hnsw_m=8, hnsw_ef_construction=32))
    yield s
    s.close()


def test_migrations_are_versioned_and_idempotent(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        first = apply_migrations(conn)
        second = apply_migrations(conn)
        rows = conn.execute("SELECT version FROM emily_schema_migrations ORDER BY 1").fetchall()
    assert first == [m.version for m in migrations()] and first
    assert second == []
    assert [r[0] for r in rows] == first


def test_copy_ingest_is_exactly_once(store: PgStore) -> None:
    recs = records(300)
    recs[4] = replace(recs[4], text='naïve café 🐈 \\ "q"', context={"ключ": "значение", "f": 1.5})
    assert store.insert(recs) == 300
    assert store.insert(recs[:150]) == 0  # a retried batch adds nothing
    assert store.insert(recs[:1]) == 0  # single insert path, same rule
    assert store.count() == 300
    got = store.fetch([r.id for r in recs[:5]])
    for r in recs[:5]:
        g = got[r.id]
        assert (g.text, g.ts, g.context, g.source) == (r.text, r.ts, r.context, r.source)
        assert g.valence == pytest.approx(r.valence, abs=1e-6)
        np.testing.assert_allclose(g.embedding, r.embedding, atol=1e-6)


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


def test_pool_stats_are_reported(store: PgStore) -> None:
    store.count()
    stats = store.pool_stats()
    assert stats.max_size == 4 and stats.min_size == 1 and stats.requests >= 1


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


def test_injected_terminated_backends_are_replaced_by_the_pool(store: PgStore, pg_dsn: str) -> None:
    """The cheap pool check must notice connections the server closed, so a recall
    after the backends were terminated still succeeds on a fresh connection."""
    recs = records(30)
    store.insert(recs)
    before = store.search(recs[3].embedding, 3)
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
        assert killed is not None and killed[0] >= 1
        # pg_terminate_backend only signals: wait until the backends exited (closed sockets)
        for _ in range(200):
            left = admin.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
            if left == (0,):
                break
            time.sleep(0.05)
    for _ in range(5):  # every pooled connection was killed; each loan must be checked
        assert store.search(recs[3].embedding, 3) == before


@pytest.fixture
def split_store(pg_dsn: str) -> PgStore:
    """A store that splits batches of 100 rows or more over two connections."""
    s = PgStore(pg_dsn, MemoryConfig(hnsw_m=8, hnsw_ef_construction=16, copy_part_rows=50))
    yield s
    s.close()


def _transactions(store: PgStore) -> int:
    with store.connection() as conn:
        row = conn.execute("SELECT count(DISTINCT xmin::text) FROM episodes").fetchone()
    assert row is not None
    return int(row[0])


def test_a_large_batch_is_split_over_two_connections_exactly_once(split_store: PgStore) -> None:
    recs = records(400)
    assert split_store.insert(recs) == 400
    assert _transactions(split_store) == 2  # two parts, each its own transaction
    assert split_store.insert(recs) == 0  # a retried split batch adds nothing
    assert split_store.insert([*recs[200:], *records(150, seed=1)]) == 150
    assert split_store.count() == 550 and len(split_store.all_ids()) == 550


def test_an_id_in_both_parts_is_stored_once(split_store: PgStore) -> None:
    """The second part waits for the first part's uncommitted row, which waits for the
    second at the commit barrier: lock_timeout must break that, then dedup stores it."""
    recs = records(200)
    recs[150] = replace(recs[150], id=recs[10].id)
    assert split_store.insert(recs) == 199
    assert split_store.count() == 199


POISON = """
CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.text = 'poison' THEN RAISE EXCEPTION 'injected fault'; END IF;
    RETURN NEW;
END $$
"""


def test_injected_fault_in_one_part_rolls_back_every_part(split_store: PgStore) -> None:
    recs = records(400)
    recs[350] = replace(recs[350], text="poison")  # in the second part
    with split_store.connection() as conn:
        conn.execute(POISON)
        conn.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON episodes FOR EACH ROW EXECUTE FUNCTION poison()"
        )
    with pytest.raises(psycopg.errors.RaiseException, match="injected fault"):
        split_store.insert(recs)
    assert split_store.count() == 0  # the first part, already copied, rolled back too
    with split_store.connection() as conn:
        conn.execute("DROP TRIGGER poison ON episodes")
    assert split_store.insert(recs) == 400


def test_injected_fault_at_one_parts_commit_is_stored_exactly_once_on_retry(
    split_store: PgStore,
) -> None:
    """A failure between the two commits leaves one part stored; the retry of the whole
    batch (what the outbox does) adds exactly the rest."""
    recs = records(400)
    recs[350] = replace(recs[350], text="poison")
    with split_store.connection() as conn:
        conn.execute(POISON)
        conn.execute(
            "CREATE CONSTRAINT TRIGGER poison AFTER INSERT ON episodes "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION poison()"
        )
    with pytest.raises(psycopg.errors.RaiseException, match="injected fault"):
        split_store.insert(recs)
    assert split_store.all_ids() == {r.id for r in recs[:200]}  # the first part committed
    with split_store.connection() as conn:
        conn.execute("DROP TRIGGER poison ON episodes")
    assert split_store.insert(recs) == 200
    assert split_store.all_ids() == {r.id for r in recs} and split_store.count() == 400


def test_injected_backend_kill_in_one_part_loses_nothing(split_store: PgStore, pg_dsn: str) -> None:
    """One part's server process is killed mid-COPY (held there by a sleeping trigger):
    the other part, waiting at the commit barrier, must roll back, and the retry that
    the outbox makes stores the whole batch."""
    recs = records(400)
    recs[350] = replace(recs[350], text="slow")  # in the second part
    with split_store.connection() as conn:
        conn.execute(
            "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.text = 'slow' THEN PERFORM pg_sleep(60); END IF; RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER slow BEFORE INSERT ON episodes FOR EACH ROW EXECUTE FUNCTION slow()"
        )
    killed: list[object] = []

    def kill_the_sleeper() -> None:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            for _ in range(600):
                row = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE wait_event = 'PgSleep' AND datname = current_database()"
                ).fetchone()
                if row is not None:
                    killed.append(row[0])
                    return
                time.sleep(0.05)

    killer = threading.Thread(target=kill_the_sleeper)
    killer.start()
    with pytest.raises(StoreUnavailable):
        split_store.insert(recs)
    killer.join()
    assert killed == [True]
    assert split_store.count() == 0
    with split_store.connection() as conn:
        conn.execute("DROP TRIGGER slow ON episodes")
    assert split_store.insert(recs) == 400 and split_store.count() == 400


def test_one_record_insert_stores_affect_as_copy_does_and_refuses_what_postgres_refuses(
    store: PgStore,
) -> None:
    """One record goes through INSERT, a batch through COPY: both store affect as float32
    (a float64 that underflows it is 0, not an error), and a value the table's checks
    refuse is an InvalidRecord, not an internal error."""
    tiny, bad = records(2)
    tiny = replace(tiny, valence=9e-111)  # the fuzzer's find: float32 underflow
    bad = replace(bad, arousal=1.5)
    assert store.insert([tiny]) == 1
    assert store.fetch([tiny.id])[tiny.id].valence == 0.0
    with pytest.raises(InvalidRecord, match=str(bad.id)):
        store.insert([bad])
    assert store.count() == 1
