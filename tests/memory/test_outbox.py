"""The outbox keeps every episode until Postgres commits it, across a restart."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emily.memory.config import MemoryConfig
from emily.memory.errors import StoreUnavailable
from emily.memory.outbox import Outbox
from emily.memory.record import Record
from emily.memory.store import PgStore
from tests.memory.helpers import records


def test_injected_delivery_failure_keeps_everything(tmp_path: Path) -> None:
    recs = records(30)
    box = Outbox(tmp_path / "o.sqlite")
    box.put(recs[:20])
    box.put(recs[10:30])  # overlap is kept once
    assert box.pending() == 30

    def down(_: Sequence[Record]) -> int:
        raise StoreUnavailable("injected: Postgres is down")

    assert box.drain(down) == 0 and box.pending() == 30
    box.close()
    box = Outbox(tmp_path / "o.sqlite")  # a restart keeps the queue
    got: list[Record] = []
    assert box.drain(lambda rs: got.extend(rs) or len(rs), batch=7) == 30
    assert [r.id for r in got] == [r.id for r in recs] and box.pending() == 0
    np.testing.assert_array_equal(got[3].embedding, recs[3].embedding)
    assert got[3].context == recs[3].context and got[3].ts == recs[3].ts


def test_redelivery_to_postgres_is_exactly_once(tmp_path: Path, pg_dsn: str) -> None:
    store = PgStore(pg_dsn, MemoryConfig(hnsw_m=8, hnsw_ef_construction=16))
    recs = records(25)
    store.insert(recs[:10])  # committed once already, e.g. before a crash
    box = Outbox(tmp_path / "o.sqlite")
    box.put(recs)
    assert box.drain(store.insert) == 25
    assert store.count() == 25 and store.all_ids() == {r.id for r in recs}
    store.close()
