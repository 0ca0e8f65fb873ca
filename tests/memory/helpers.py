"""Test data: clustered unit vectors (real embeddings are clustered) and records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np

from emily.bus.schemas.memory import EMBED_DIM
from emily.ids import uuid7
from emily.memory.record import Record, normalize

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def clustered(n: int, *, topics: int = 8, seed: int = 0, spread: float = 0.3) -> np.ndarray:
    """``(n, 384)`` float32 unit vectors drawn around ``topics`` centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((topics, EMBED_DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, topics, n)
    vecs = centres[labels] + spread * rng.standard_normal((n, EMBED_DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs.astype(np.float32)


def records(n: int, *, seed: int = 0) -> list[Record]:
    """``n`` records: one per hour from :data:`T0`, affect cycling, context ``{"i": i}``."""
    vecs = clustered(n, seed=seed)
    return [
        Record(
            id=uuid7(),
            ts=T0 + timedelta(hours=i),
            text=f"episode {i}",
            embedding=normalize(vecs[i]),
            valence=((i % 21) - 10) / 10,
            arousal=(i % 11) / 10,
            dominance=0.0,
            context={"i": i, "even": i % 2 == 0},
            source="test" if i % 3 else "other",
        )
        for i in range(n)
    ]


def ids(recs: list[Record]) -> list[uuid.UUID]:
    """The ids of ``recs`` in order."""
    return [r.id for r in recs]
