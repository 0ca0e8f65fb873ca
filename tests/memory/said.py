"""Statements applied to a real fact store, as consolidation applies them: the facts
test_facts.py and test_graph.py state before they ask."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import numpy.typing as npt

from emily.ids import uuid7
from emily.memory import facts
from emily.memory.extract import Triple, extract
from emily.memory.store import PgStore
from tests.memory.helpers import T0


def apply_said(
    store: PgStore,
    text: str,
    *,
    user: str,
    hours: int = 0,
    embed: Callable[[Triple], npt.NDArray[np.float32]],
) -> uuid.UUID:
    """Apply the facts :func:`extract` finds in ``text`` as said by ``user`` at
    ``T0 + hours``, in one new episode and one transaction, each fact with the unit
    vector ``embed(triple)`` (``(384,)`` float32); returns the episode's id."""
    episode = uuid7()
    with store.connection() as conn, conn.transaction():
        for t in extract(text):
            facts.apply(
                conn,
                user=user,
                agent=None,
                triple=t,
                episode_id=episode,
                at=T0 + timedelta(hours=hours),
                embedding=embed(t),
            )
    return episode
