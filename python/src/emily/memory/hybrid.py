"""Hybrid recall: vector, full-text and fact-graph candidates fused by reciprocal rank.

Each source ranks its own candidates within the recall's scope and filters; an
episode's fused score is ``sum over sources of 1 / (RRF_K + rank)`` (rank from 1), so
an episode that two sources agree on beats one that a single source ranks first, and
no source's raw scores (cosine, ``ts_rank_cd``, graph distance) need calibrating
against another's. A rare proper noun that MiniLM barely separates from other names
still wins through the full-text source.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence

import psycopg

from emily.memory.store import PgStore

log = logging.getLogger(__name__)
#: The reciprocal-rank constant (Cormack et al.'s k = 60).
RRF_K = 60

GraphEpisodes = Callable[..., list[uuid.UUID]]


def fuse(rankings: Sequence[Sequence[uuid.UUID]], k: int = RRF_K) -> list[tuple[uuid.UUID, float]]:
    """Reciprocal-rank fusion of ranked id lists: ``[(id, fused score)]``, best first.

    Ties keep the order of first appearance (the vector source comes first).
    """
    score: dict[uuid.UUID, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            score[key] = score.get(key, 0.0) + 1.0 / (k + rank)
    return sorted(score.items(), key=lambda kv: -kv[1])


def _graph_function() -> GraphEpisodes | None:
    try:
        from emily.memory.graph import graph_episodes
    except ImportError:  # a build without the fact graph: fuse the other two sources
        return None
    return graph_episodes


def graph_candidates(store: PgStore, user: str, text: str, limit: int) -> list[uuid.UUID]:
    """Episodes of ``user`` linked through the fact graph to what ``text`` names.

    Empty when the fact graph is not installed or its tables are not there yet.
    """
    fn = _graph_function()
    if fn is None:
        return []
    try:
        with store.connection() as conn:
            return fn(conn, user, text, limit)
    except psycopg.Error as exc:  # the graph is an extra source: recall answers without it
        log.warning("graph candidates unavailable (%s); fusing vector and text only", exc)
        return []
