"""Tier moves: a hypothesis state machine proves no episode is lost or duplicated.

The machine drives the real tier code (L0 tensor, L1 W-TinyLFU, L2 mmap files) over a
real Postgres (L3) through recalls, idle demotions and restarts.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from emily.bus.schemas.memory import MemoryOperation, Tier
from emily.memory.config import MemoryConfig
from emily.memory.l0 import L0
from emily.memory.metrics import MemoryMetrics
from emily.memory.record import Record
from emily.memory.store import PgStore
from emily.memory.tiers import TieredMemory
from tests.memory.helpers import records

N = 40


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make(root: Path, clock: Clock, events: list[MemoryOperation] | None = None) -> TieredMemory:
    return TieredMemory(
        root,
        L0(3, torch.device("cpu")),
        l1_capacity=5,
        l2_capacity=8,
        idle_s=100.0,
        l2_min_accesses=1,  # the move paths below start at the first recall
        metrics=MemoryMetrics(),
        publish=None if events is None else events.extend,
        clock=clock,
    )


def serve_one(tiers: TieredMemory, store: PgStore, key: uuid.UUID) -> tuple[Record, Tier]:
    got = tiers.get(key)
    return got if got is not None else (store.fetch([key])[key], "L3")


@pytest.fixture(scope="module")
def l3(pg_server: object, tmp_path_factory: pytest.TempPathFactory) -> tuple[PgStore, list[Record]]:
    import psycopg

    from tests.fixtures.postgres import _database_dsn

    dsn0 = pg_server.dsn  # type: ignore[attr-defined]
    name = f"tiers_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn0, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    store = PgStore(_database_dsn(dsn0, name), MemoryConfig(hnsw_m=8, hnsw_ef_construction=16))
    recs = records(N, seed=7)
    store.insert(recs)
    return store, recs


def test_tier_moves_never_lose_or_duplicate(l3: tuple[PgStore, list[Record]]) -> None:
    store, recs = l3
    truth = {r.id: r for r in recs}

    class Tiers(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.root = Path(tempfile.mkdtemp(prefix="tiers-", dir=Path.home().parent))
            self.clock = Clock()
            self.events: list[MemoryOperation] = []
            self.tiers = make(self.root, self.clock, self.events)
            self.recalls = 0

        def teardown(self) -> None:
            shutil.rmtree(self.root, ignore_errors=True)

        @rule(picks=st.lists(st.integers(0, N - 1), min_size=1, max_size=6))
        def recall(self, picks: list[int]) -> None:
            served = [serve_one(self.tiers, store, recs[i].id) for i in dict.fromkeys(picks)]
            for rec, _tier in served:  # every tier returns the true body
                want = truth[rec.id]
                assert (rec.text, rec.ts, rec.context) == (want.text, want.ts, want.context)
                np.testing.assert_allclose(rec.embedding, want.embedding, atol=1e-6)
            self.tiers.accessed(served)
            self.recalls += len(served)

        @rule(seconds=st.floats(0, 250))
        def idle(self, seconds: float) -> None:
            self.clock.now += seconds
            self.tiers.maintain()

        @rule()
        def restart(self) -> None:
            before = dict(self.tiers.tier_of)
            self.tiers.save()
            self.tiers = make(self.root, self.clock, self.events)
            self.tiers.warm_up(store.fetch)
            assert self.tiers.tier_of == before

        @invariant()
        def nothing_lost_or_duplicated(self) -> None:
            self.tiers.check()  # disjoint tiers, consistent maps, capacities held
            assert set(self.tiers.tier_of) <= set(truth)
            moves = [e for e in self.events if e.op in ("promote", "demote")]
            # replaying the published moves gives exactly the tier map
            replay: dict[uuid.UUID, Tier] = {}
            for e in moves:
                assert replay.get(e.episode_id, "L3") == e.from_tier  # type: ignore[arg-type]
                if e.to_tier == "L3":
                    replay.pop(e.episode_id, None)  # type: ignore[arg-type]
                else:
                    replay[e.episode_id] = e.to_tier  # type: ignore[index,assignment]
            assert replay == self.tiers.tier_of

    Tiers.TestCase.settings = settings(
        max_examples=25,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    Tiers.TestCase().runTest()
    assert store.count() == N  # L3 is never touched by moves


def test_promotion_path_and_idle_demotion(tmp_path: Path, l3: tuple[PgStore, list[Record]]) -> None:
    store, recs = l3
    clock = Clock()
    events: list[MemoryOperation] = []
    tiers = make(tmp_path, clock, events)
    key = recs[0].id
    path = []
    for _ in range(6):
        tiers.accessed([serve_one(tiers, store, key)])
        path.append(tiers.tier_of[key])
    assert path[:3] == ["L2", "L1", "L1"] and path[-1] == "L0"
    clock.now += 101
    tiers.maintain()
    assert tiers.tier_of[key] == "L1"
    clock.now += 101
    tiers.maintain()
    clock.now += 101
    tiers.maintain()
    assert key not in tiers.tier_of
    assert [(e.from_tier, e.to_tier) for e in events if e.op == "demote"] == [
        ("L0", "L1"),
        ("L1", "L2"),
        ("L2", "L3"),
    ]


def test_capacity_pressure_demotes_the_coldest(
    tmp_path: Path, l3: tuple[PgStore, list[Record]]
) -> None:
    store, recs = l3
    tiers = make(tmp_path, Clock())
    for rec in recs[:20]:
        tiers.accessed([serve_one(tiers, store, rec.id)])
    assert len(tiers.l2) == 8  # L2 full: the oldest twelve went back to L3 only
    assert set(tiers.l2.slot_of) == {r.id for r in recs[12:20]}
    tiers.check()


def test_records_too_big_for_a_slot_skip_l2(
    tmp_path: Path, l3: tuple[PgStore, list[Record]]
) -> None:
    store, recs = l3
    tiers = TieredMemory(
        tmp_path, L0(2, torch.device("cpu")), l1_capacity=4, l2_capacity=4, l2_slot_bytes=64
    )
    tiers.accessed([serve_one(tiers, store, recs[0].id)])
    assert recs[0].id not in tiers.tier_of and len(tiers.l2) == 0
    tiers.check()


def test_cached_episodes_missing_from_l3_are_dropped(
    tmp_path: Path, l3: tuple[PgStore, list[Record]]
) -> None:
    store, recs = l3
    tiers = make(tmp_path, Clock())
    ghosts = records(3, seed=99)  # never stored in Postgres, e.g. a replaced database
    tiers.accessed([(g, "L3") for g in ghosts])
    tiers.accessed([serve_one(tiers, store, recs[1].id)])
    assert len(tiers.tier_of) == 4
    assert tiers.drop_missing(store.existing) == 3
    assert set(tiers.tier_of) == {recs[1].id}
    tiers.check()


def test_sampled_l0_eviction_takes_a_cold_entry(tmp_path: Path) -> None:
    """L0 above the sample size: the evicted entry is among the least frequent."""
    tiers = TieredMemory(
        tmp_path, L0(64, torch.device("cpu")), l1_capacity=256, l2_capacity=256, clock=Clock()
    )
    recs = records(65, seed=5)
    for i, rec in enumerate(recs[:64]):  # entry i was accessed i + 1 times
        tiers.l0.put(rec)
        tiers.tier_of[rec.id] = "L0"
        for _ in range(min(i + 1, 15)):
            tiers.l1.sketch.add(rec.id)
    freq = {r.id: tiers.l1.frequency(r.id) for r in recs[:64]}
    tiers._into_l0(recs[64], "L1")
    (evicted,) = [r.id for r in recs[:64] if r.id not in tiers.l0]
    assert sorted(freq.values()).index(freq[evicted]) < 16  # in the coldest quarter
    assert tiers.tier_of[evicted] == "L1" and recs[64].id in tiers.l0


def test_l2_admits_on_the_second_recall_by_default(
    tmp_path: Path, l3: tuple[PgStore, list[Record]]
) -> None:
    store, recs = l3
    events: list[MemoryOperation] = []
    tiers = TieredMemory(
        tmp_path, L0(2, torch.device("cpu")), l1_capacity=4, l2_capacity=4, publish=events.extend
    )
    tiers.accessed([serve_one(tiers, store, recs[0].id)])
    assert recs[0].id not in tiers.tier_of  # a one-off result stays in L3 only
    assert [e.op for e in events] == ["miss"]
    tiers.accessed([serve_one(tiers, store, recs[0].id)])
    assert tiers.tier_of[recs[0].id] == "L2"
    assert [(e.op, e.to_tier) for e in events[1:]] == [("promote", "L2"), ("miss", None)]
