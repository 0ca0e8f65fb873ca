"""The in-process HNSW index: exactness against brute force, growth, removal, files."""

from __future__ import annotations

import tracemalloc
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from emily.ids import uuid7
from emily.memory.index import META_FILE, AnnIndex, HnswParams

from .helpers import clustered


def _ids(n: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(n)]


def test_search_matches_brute_force_on_clustered_vectors() -> None:
    vecs = clustered(3000, topics=20, seed=1, spread=0.05)
    keys = _ids(len(vecs))
    index = AnnIndex(HnswParams(m=16, ef_construction=100), ef_search=100, capacity=64)
    assert index.add(keys, vecs) == len(keys)
    assert len(index) == 3000 and index.capacity >= 3000  # grew from 64 slots
    rng = np.random.default_rng(2)
    queries = vecs[rng.choice(len(vecs), 50)] + 0.05 * rng.standard_normal((50, 384))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    truth = np.argsort(-(queries @ vecs.T), axis=1)[:, :10]
    overlap = []
    for q, row in zip(queries, truth, strict=True):
        got = index.search(q, 10)
        assert len(got) == 10
        scores = [s for _, s in got]
        assert scores == sorted(scores, reverse=True)
        for key, score in got:  # the reported score is the exact cosine
            assert score == pytest.approx(float(vecs[keys.index(key)] @ q), abs=1e-5)
        overlap.append(len({k for k, _ in got} & {keys[j] for j in row}) / 10)
    assert np.mean(overlap) >= 0.95


def test_adding_an_id_twice_indexes_it_once() -> None:
    vecs = clustered(10, seed=3)
    keys = _ids(10)
    index = AnnIndex(capacity=16)
    assert index.add(keys + keys[:3], np.concatenate([vecs, vecs[:3]])) == 10
    assert index.add(keys[:5], vecs[:5]) == 0
    found = index.search(vecs[0], 10)
    assert sorted(k for k, _ in found) == sorted(keys)


def test_removed_episodes_are_not_returned() -> None:
    vecs = clustered(200, seed=4)
    keys = _ids(200)
    index = AnnIndex(ef_search=200)
    index.add(keys, vecs)
    assert index.remove([*keys[:50], uuid.uuid4()]) == 50
    got = {k for k, _ in index.search(vecs[0], 150)}
    assert got == set(keys[50:])
    assert keys[0] not in index and len(index) == 150


def test_k_beyond_the_indexed_count_returns_all() -> None:
    index = AnnIndex()
    assert index.search(clustered(1)[0], 5) == []
    vecs = clustered(3, seed=5)
    index.add(_ids(3), vecs)
    assert len(index.search(vecs[0], 10)) == 3


def test_a_query_with_its_own_ef_search_leaves_the_default_alone() -> None:
    vecs = clustered(500, seed=6)
    index = AnnIndex(ef_search=20)
    index.add(_ids(500), vecs)
    wide = index.search(vecs[1], 10, ef_search=400)
    assert len(wide) == 10 and index.ef_search == 20
    assert next(k for k, _ in index.search(vecs[1], 10)) == wide[0][0]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    vecs = clustered(400, seed=7)
    keys = _ids(400)
    index = AnnIndex(HnswParams(m=8, ef_construction=40), ef_search=80)
    index.add(keys, vecs)
    index.remove(keys[:10])
    index.save(tmp_path)
    assert not index.dirty
    back = AnnIndex.load(tmp_path, HnswParams(m=8, ef_construction=40), ef_search=80)
    assert back is not None
    assert set(back.label_of) == set(keys[10:])
    for q in vecs[::37]:
        assert back.search(q, 5) == index.search(q, 5)
    back.add(_ids(1), vecs[:1])  # a loaded index keeps growing
    assert len(back) == 391


def test_a_label_keeps_a_few_dozen_bytes_of_python_heap_beside_the_graph() -> None:
    # hnswlib's own memory is not traced; its ids, scope columns and partition are
    vecs = clustered(12_000, seed=11)
    index = AnnIndex(HnswParams(m=8, ef_construction=16))
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(0, len(vecs), 500):  # ids made here, as stores make them
            index.add([uuid7() for _ in range(500)], vecs[i : i + 500], threads=-1)
        per = (tracemalloc.get_traced_memory()[0] - base) / len(index)
    finally:
        tracemalloc.stop()
    # about 40 B of id map and 30 B of scope columns and partition rows, with the
    # arrays' doubling slack; a UUID in a list and a dict, and a dict of rows, take 300
    assert per < 160, f"{per:.0f} B per label"
    assert len(index) == 12_000


def test_load_refuses_other_parameters_and_damaged_files(tmp_path: Path) -> None:
    index = AnnIndex(HnswParams(m=8, ef_construction=40))
    index.add(_ids(20), clustered(20, seed=8))
    index.save(tmp_path)
    assert AnnIndex.load(tmp_path, HnswParams(m=16, ef_construction=40)) is None
    assert AnnIndex.load(tmp_path / "absent", HnswParams(m=8, ef_construction=40)) is None
    (tmp_path / META_FILE).write_text("{not json")
    assert AnnIndex.load(tmp_path, HnswParams(m=8, ef_construction=40)) is None


def test_reconcile_adds_missing_and_removes_extra() -> None:
    vecs = clustered(60, seed=9)
    keys = _ids(60)
    index = AnnIndex()
    index.add(keys[:40], vecs[:40])
    vec_of = dict(zip(keys, vecs, strict=True))
    asked: list[int] = []

    def vectors_of(ids: list[uuid.UUID]):  # type: ignore[no-untyped-def]
        asked.append(len(ids))
        yield ids, np.stack([vec_of[k] for k in ids])

    added, removed = index.reconcile(set(keys[20:]), vectors_of)
    assert (added, removed) == (20, 20) and asked == [20]
    assert set(index.label_of) == set(keys[20:])
    assert index.reconcile(set(keys[20:]), vectors_of) == (0, 0) and asked == [20]


class IndexMachine(RuleBasedStateMachine):
    """Random adds, removals, saves and loads: the index holds exactly the model's ids."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = clustered(64, seed=10)
        self.keys = _ids(64)
        self.index = AnnIndex(HnswParams(m=8, ef_construction=32), ef_search=64, capacity=16)
        self.model: set[int] = set()
        self.dir = Path(__import__("tempfile").mkdtemp(prefix="emily-index-"))

    @rule(picks=st.lists(st.integers(0, 63), max_size=12))
    def add(self, picks: list[int]) -> None:
        added = self.index.add([self.keys[i] for i in picks], self.pool[picks])
        assert added == len(set(picks) - self.model)
        self.model |= set(picks)

    @rule(picks=st.lists(st.integers(0, 63), max_size=6))
    def remove(self, picks: list[int]) -> None:
        assert self.index.remove({self.keys[i] for i in picks}) == len(set(picks) & self.model)
        self.model -= set(picks)

    @rule()
    def save_and_load(self) -> None:
        self.index.save(self.dir)
        loaded = AnnIndex.load(self.dir, HnswParams(m=8, ef_construction=32), ef_search=64)
        assert loaded is not None
        self.index = loaded

    @invariant()
    def holds_exactly_the_model(self) -> None:
        assert set(self.index.label_of) == {self.keys[i] for i in self.model}
        if self.model:
            found = [k for k, _ in self.index.search(self.pool[0], len(self.model))]
            assert len(found) == len(set(found))  # nothing twice
            assert set(found) <= {self.keys[i] for i in self.model}  # nothing removed


TestIndexMachine = IndexMachine.TestCase
TestIndexMachine.settings = settings(max_examples=30, stateful_step_count=20, deadline=None)
