"""The write path against a real Postgres + pgvector: exactly once, split batches that
commit together, and faults injected with real triggers."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import ClassVar

import psycopg
import pytest

from emily.memory.config import MemoryConfig
from emily.memory.errors import StoreUnavailable
from emily.memory.pgcopy import InvalidRecord
from emily.memory.store import PgStore
from tests.memory.helpers import records


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


class _WatchedBarrier(threading.Barrier):
    """A barrier that notes every abort made after it had let its parties through."""

    aborts_after_release: ClassVar[list[bool]] = []

    def __init__(self, parties: int) -> None:
        super().__init__(parties)
        self.released = False

    def wait(self, timeout: float | None = None) -> int:
        index = super().wait(timeout)
        self.released = True
        return index

    def abort(self) -> None:
        self.aborts_after_release.append(self.released)
        super().abort()


def test_injected_fault_at_one_parts_commit_is_stored_exactly_once_on_retry(
    split_store: PgStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure between the two commits leaves the other part stored, whatever the
    threads' timing, and the retry of the whole batch (what the outbox does) adds exactly
    the rest. An abort of the barrier after it released would roll the other part back
    only when its thread woke late: the watched barrier shows none is made."""
    monkeypatch.setattr(threading, "Barrier", _WatchedBarrier)
    _WatchedBarrier.aborts_after_release = []
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
    assert True not in _WatchedBarrier.aborts_after_release
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
