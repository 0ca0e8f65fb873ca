"""memory/rebuild: the index and the tier map rebuilt from L3 and the log, compared."""

from __future__ import annotations

import pytest
import zenoh

from emily.bus.endpoints import CORRECT, FORGET, REBUILD
from emily.bus.rpc import wait_for_server
from emily.bus.schemas.lifecycle import CorrectRequest, ForgetRequest, RebuildRequest
from emily.embed import Embedder
from emily.memory.rebuild import same_index
from tests.memory.conftest import KEYS, Running, start
from tests.memory.test_service import FACTS, recall, store

pytestmark = pytest.mark.slow


def _use(running: Running) -> list[object]:
    ids = store(running.client, FACTS).ids
    for text in ("where are my keys?", "the cat on the windowsill", "train to Berlin"):
        for _ in range(3):
            recall(running.client, text, k=2)
    FORGET.call(running.client, KEYS, ForgetRequest(ids=[ids[1]]), timeout_s=30)
    fix = CorrectRequest(id=ids[0], text="I left my keys in the car")
    CORRECT.call(running.client, KEYS, fix, timeout_s=30)
    return list(ids)


def test_rebuilt_projections_match_the_running_ones(
    running: Running, embedder: Embedder, zenoh_pair: tuple[zenoh.Session, zenoh.Session]
) -> None:
    memory = running.service.memory
    assert memory.indexer is not None and memory.indexer.ready.wait(30)
    ids = _use(running)
    assert len(set(memory.tiers.tier_of.values())) >= 2  # several tiers hold episodes
    before = memory.indexer.index
    reply = REBUILD.call(running.client, KEYS, RebuildRequest(), timeout_s=60)
    assert reply.matched and reply.indexed == len(FACTS) - 1
    assert reply.tiers == {k: int(v) for k, v in memory.tiers.sizes().items()}
    assert memory.indexer.index is not before and same_index(before, memory.indexer.index)
    assert ids[1] not in memory.indexer.index
    # and after a restart, which reloads the tiers and the saved index
    running.service.close()
    running.service = start(running.cfg, running.dsn, embedder, zenoh_pair[0])
    assert wait_for_server(running.client, REBUILD.key(KEYS), timeout_s=10)
    memory = running.service.memory
    assert memory.indexer is not None and memory.indexer.ready.wait(30)
    assert REBUILD.call(running.client, KEYS, RebuildRequest(), timeout_s=60).matched


def test_a_projection_that_drifted_is_found_and_rebuilt(running: Running) -> None:
    memory = running.service.memory
    assert memory.indexer is not None and memory.indexer.ready.wait(30)
    ids = _use(running)
    # the faults: an index entry lost, and tier moves lost before they were logged
    memory.indexer.index.remove([ids[2]])
    logged = dict(memory.tiers.tier_of)
    sink, memory.tiers.publish = memory.tiers.publish, None  # moves that reach no log
    try:
        recall(running.client, "rain in the park", k=1)
        recall(running.client, "rain in the park", k=1)
    finally:
        memory.tiers.publish = sink
    drifted = dict(memory.tiers.tier_of)
    assert drifted != logged

    reply = REBUILD.call(running.client, KEYS, RebuildRequest(), timeout_s=60)
    assert not reply.matched
    assert ids[2] in memory.indexer.index
    assert memory.tiers.tier_of != drifted  # the unlogged moves were undone, logged
    memory.tiers.check()
    assert REBUILD.call(running.client, KEYS, RebuildRequest(), timeout_s=60).matched
