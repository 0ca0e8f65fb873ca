"""The store's connection pool against a real Postgres: counters, and dead connections replaced."""

from __future__ import annotations

import time

import psycopg

from emily.memory.store import PgStore
from tests.memory.helpers import records


def test_pool_stats_are_reported(store: PgStore) -> None:
    store.count()
    stats = store.pool_stats()
    assert stats.max_size == 4 and stats.min_size == 1 and stats.requests >= 1


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
