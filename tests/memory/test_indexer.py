"""The in-process index kept in step with real Postgres: build, stores, restart, restore."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest

from emily.bus.schemas.memory import RecallFilters, RecallRequest
from emily.memory.config import MemoryConfig
from emily.memory.core import Memory
from emily.memory.index import HnswParams
from emily.memory.indexer import Indexer
from emily.memory.store import PgStore

from .helpers import ids, records

PARAMS = HnswParams(m=8, ef_construction=64)


def _cfg(tmp_path: Path, **kw: object) -> MemoryConfig:
    return MemoryConfig(
        state=tmp_path / "memory", hnsw_m=8, hnsw_ef_construction=64, ef_search=200, **kw
    )  # type: ignore[arg-type]


def _ready(indexer: Indexer) -> Indexer:
    assert indexer.ready.wait(120), "the index build did not finish"
    return indexer


def test_build_from_postgres_then_follow_stores(pg_dsn: str, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    store = PgStore(pg_dsn, cfg)
    recs = records(300, seed=1)
    store.insert(recs[:250])
    indexer = Indexer(store, tmp_path / "index", PARAMS, ef_search=200)
    assert indexer.search(recs[0].embedding, 5) is None  # not built: Postgres answers
    indexer.start()
    _ready(indexer)
    assert set(indexer.index.label_of) == set(ids(recs[:250]))
    store.insert(recs[250:])
    indexer.add(recs[250:])
    vecs = np.stack([r.embedding for r in recs])
    for i in (0, 120, 299):
        got = indexer.search(recs[i].embedding, 10)
        assert got is not None
        truth = {recs[j].id for j in np.argsort(-(vecs @ recs[i].embedding))[:10]}
        assert got[0][0] == recs[i].id
        assert len({k for k, _ in got} & truth) >= 9
    indexer.close()
    assert (tmp_path / "index" / "hnsw.bin").exists()  # closed dirty: saved
    store.close()


def test_restart_loads_the_file_and_reconciles_with_postgres(pg_dsn: str, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    store = PgStore(pg_dsn, cfg)
    recs = records(120, seed=2)
    store.insert(recs[:100])
    first = Indexer(store, tmp_path / "index", PARAMS, ef_search=200)
    first.start()
    _ready(first).close()
    # while the service is down: rows stored by another path, and rows lost in a restore
    store.insert(recs[100:])
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM episodes WHERE id = ANY(%s)", (ids(recs[:10]),))
    second = Indexer(store, tmp_path / "index", PARAMS, ef_search=200)
    second.start()
    _ready(second)
    assert set(second.index.label_of) == set(ids(recs[10:]))
    got = second.search(recs[110].embedding, 3)
    assert got is not None and got[0][0] == recs[110].id
    second.close()
    store.close()


def test_memory_recall_uses_the_index_and_keeps_filters_on_postgres(
    pg_dsn: str, tmp_path: Path
) -> None:
    cfg = _cfg(tmp_path, l0_capacity=4, l1_capacity=8, l2_capacity=16, l2_min_accesses=1)
    memory = Memory(cfg, PgStore(pg_dsn, cfg), None)
    assert memory.indexer is not None
    recs = records(200, seed=3)
    memory._insert(recs)
    _ready(memory.indexer)
    assert len(memory.indexer.index) == 200
    q = recs[7].embedding
    via_index = memory.recall(RecallRequest(vector=q.tolist(), k=5))  # type: ignore[arg-type]
    via_pg = memory.store.search(q, 5, ef_search=200)
    assert [h.episode.id for h in via_index.hits] == [k for k, _ in via_pg]
    assert via_index.hits[0].episode.text == recs[7].text  # bodies from L3 by key
    for hit, (_, score) in zip(via_index.hits, via_pg, strict=True):
        assert abs(hit.score - score) < 1e-4
    again = memory.recall(RecallRequest(vector=q.tolist(), k=5))  # type: ignore[arg-type]
    assert {h.tier for h in again.hits} == {"L2"}  # promoted on first access
    flt = RecallFilters(context={"even": True})
    filtered = memory.recall(RecallRequest(vector=q.tolist(), k=5, filters=flt))  # type: ignore[arg-type]
    assert len(filtered.hits) == 5
    assert all(h.episode.context["even"] is True for h in filtered.hits)
    stats = memory.stats()
    assert stats.index.search_index == "hnswlib" and stats.index.indexed == 200
    assert stats.index.index_ready
    memory.close()


def test_postgres_search_index_setting_disables_the_in_process_index(
    pg_dsn: str, tmp_path: Path
) -> None:
    cfg = _cfg(tmp_path, search_index="postgres")
    memory = Memory(cfg, PgStore(pg_dsn, cfg), None)
    assert memory.indexer is None
    recs = records(20, seed=4)
    memory._insert(recs)
    reply = memory.recall(RecallRequest(vector=recs[3].embedding.tolist(), k=3))  # type: ignore[arg-type]
    assert reply.hits[0].episode.id == recs[3].id
    assert memory.stats().index.search_index == "postgres"
    memory.close()


def test_recall_many_answers_like_recall_one_by_one(
    pg_dsn: str, tmp_path: Path, embedder: object
) -> None:
    cfg = _cfg(tmp_path)
    memory = Memory(cfg, PgStore(pg_dsn, cfg), embedder)  # type: ignore[arg-type]
    assert memory.indexer is not None
    recs = records(150, seed=5)
    memory._insert(recs)
    _ready(memory.indexer)
    reqs = [
        RecallRequest(vector=recs[3].embedding.tolist(), k=5),  # type: ignore[arg-type]
        RecallRequest(vector=recs[40].embedding.tolist(), k=3, ef_search=300),  # type: ignore[arg-type]
        RecallRequest(text="episode 7", k=4),
        RecallRequest(vector=recs[3].embedding.tolist(), k=8),  # type: ignore[arg-type]
    ]
    assert all(memory.batchable(r) for r in reqs)
    assert not memory.batchable(RecallRequest(text="x", filters=RecallFilters(source="test")))
    assert not memory.batchable(RecallRequest(text="x", scope="hot"))
    together = memory.recall_many(reqs)
    alone = [memory.recall(r) for r in reqs]
    for a, b, req in zip(together, alone, reqs, strict=True):
        assert len(a.hits) == req.k
        assert [h.episode.id for h in a.hits] == [h.episode.id for h in b.hits]
        assert [h.score for h in a.hits] == pytest.approx([h.score for h in b.hits], abs=1e-6)
    assert together[0].hits[0].episode.id == recs[3].id
    assert memory.recall_many([]) == []
    memory.close()


def test_the_slots_gauge_keeps_counting_the_slots_of_removed_episodes(
    pg_dsn: str, tmp_path: Path
) -> None:
    memory = Memory(_cfg(tmp_path), PgStore(pg_dsn, _cfg(tmp_path)), None)
    assert memory.indexer is not None
    recs = records(60, seed=5)
    memory._insert(recs)
    _ready(memory.indexer)

    def slots() -> float | None:
        return memory.metrics.registry.get_sample_value("emily_memory_index_slots")

    assert slots() == 60
    assert memory.indexer.index.remove([r.id for r in recs[:7]]) == 7
    assert len(memory.indexer.index) == 53 and slots() == 60  # the removed keep their slots
    memory.close()
