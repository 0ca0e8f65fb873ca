"""Rebuilding memory's projections from L3 and the event log (``memory/rebuild``).

Two structures of the running service are projections, not data: the in-process
search index (a function of the episodes in L3) and the tier map (where each cached
episode is: a function of the log's ``promote``/``demote``/``forget``/``store`` events,
restricted to the episodes L3 holds; an episode whose every event was trimmed from
the log keeps the tier it has). :func:`rebuild` builds both afresh, compares
each with the running one, and puts the rebuilt index in place. Where the tier map
and the log disagree (moves lost in a crash before they were logged), those episodes
go back to L3 with logged demotions, so the two agree again. ``matched`` says whether
the running projections already equalled the rebuilt ones.
"""

from __future__ import annotations

import shutil
import time
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from emily.bus.schemas.lifecycle import RebuildReply
from emily.bus.schemas.memory import Tier
from emily.memory import events
from emily.memory.index import AnnIndex
from emily.memory.indexer import Indexer
from emily.memory.store import Conn

if TYPE_CHECKING:
    from emily.memory.core import Memory

#: The latest tier-relevant event of each episode L3 holds, in one pass over the log.
_LAST_MOVES = (
    "SELECT DISTINCT ON (m.episode_id) m.episode_id, m.op, m.detail ->> 'to' "
    "FROM memory_events m JOIN episodes e ON e.id = m.episode_id "
    "WHERE m.op IN ('promote', 'demote', 'forget', 'store') "
    "ORDER BY m.episode_id, m.seq DESC"
)


def tier_map(conn: Conn) -> dict[uuid.UUID, Tier]:
    """The tier map the log implies: each cached episode's tier (L3-only ones left out)."""
    out: dict[uuid.UUID, Tier] = {}
    for key, op, dst in conn.execute(_LAST_MOVES).fetchall():
        if op in ("promote", "demote") and dst in ("L0", "L1", "L2"):
            out[key] = dst
    return out


def _vectors(index: AnnIndex) -> dict[uuid.UUID, np.ndarray]:
    """Every indexed episode's stored vector ``(384,)``."""
    labels = list(index.label_of.values())
    if not labels:
        return {}
    raw: Any = index._index.get_items(labels)
    vecs = np.asarray(raw, dtype=np.float32)
    return dict(zip(index.label_of, vecs, strict=True))


def same_index(a: AnnIndex, b: AnnIndex, atol: float = 1e-5) -> bool:
    """Whether two indexes hold the same episodes with the same vectors."""
    if set(a.label_of) != set(b.label_of):
        return False
    va, vb = _vectors(a), _vectors(b)
    return all(np.allclose(va[k], vb[k], atol=atol) for k in va)


def _rebuild_index(memory: Memory) -> tuple[int, bool]:
    """Build the index from L3 as a start-up does, compare, and put it in place;
    returns ``(indexed, matched)``."""
    running = memory.indexer
    if running is None:
        return 0, True
    root = memory.cfg.root / "index.rebuild"
    shutil.rmtree(root, ignore_errors=True)
    fresh = Indexer(memory.store, root, running.params, ef_search=running.ef_search)
    try:
        fresh._build()  # the start-up build itself, on this thread
    finally:
        shutil.rmtree(root, ignore_errors=True)
    old = running.index
    matched = running.ready.is_set() and same_index(old, fresh.index)
    running.index = fresh.index
    # stores committed while it was built went to the old index only
    late = [k for k in old.label_of if k not in fresh.index.label_of]
    if late:
        running.add(list(memory.store.fetch(late).values()))
    running.ready.set()
    running.save()
    return len(running.index), matched


def _rebuild_tiers(memory: Memory) -> bool:
    """Compare the running tier map with the log's; make them agree; returns whether
    they already did."""
    memory.events.flush_moves()
    with memory.store.connection() as conn:
        logged = tier_map(conn)
    with memory.tiers.lock:
        running = dict(memory.tiers.tier_of)
        held = set(memory.store.existing(list(running))) if running else set()
        running = {k: t for k, t in running.items() if k in held}
        with memory.store.connection() as conn:  # no event left to contradict them
            for key in events.unlogged(conn, [k for k in running if k not in logged]):
                logged[key] = running[key]
        if running == logged:
            return True
        memory.tiers.evict([k for k, t in running.items() if logged.get(k) != t])
    # the log places some episodes the running tiers do not hold: it catches up
    stale = [(k, t) for k, t in logged.items() if running.get(k) != t]
    memory.events.flush_moves()
    with memory.store.connection() as conn, conn.transaction():
        events.append(
            conn,
            [
                events.Change("demote", episode_id=k, detail={"from": t, "to": "L3"})
                for k, t in stale
                if memory.tiers.tier_of.get(k) is None
            ],
        )
    memory.events.notify()
    return False


def rebuild(memory: Memory) -> RebuildReply:
    """Rebuild the index and the tier map; see the module docstring.

    Raises
    ------
    StoreUnavailable
        Postgres is unreachable; nothing was replaced.
    """
    start = time.perf_counter()
    tiers_matched = _rebuild_tiers(memory)
    indexed, index_matched = _rebuild_index(memory)
    return RebuildReply(
        indexed=indexed,
        tiers={k: int(v) for k, v in memory.tiers.sizes().items()},
        matched=tiers_matched and index_matched,
        took_ms=(time.perf_counter() - start) * 1000,
    )
