"""The in-process form of an episode, shared by every tier."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from emily.bus.schemas.memory import EMBED_DIM, Affect, Episode, EpisodeIn, StoredValue

Vector = npt.NDArray[np.float32]


def normalize(vec: npt.ArrayLike) -> Vector:
    """``vec`` as float32 of unit L2 norm (a zero vector stays zero); shape ``(384,)``."""
    arr = np.asarray(vec, dtype=np.float32).reshape(-1)
    if arr.shape != (EMBED_DIM,):
        raise ValueError(f"an embedding has {EMBED_DIM} dimensions, got shape {arr.shape}")
    norm = float(np.linalg.norm(arr))
    return arr / norm if norm > 0 else arr


@dataclass(frozen=True, eq=False)
class Record:
    """One episode with its unit-norm embedding ``(384,) float32``."""

    id: uuid.UUID
    ts: datetime
    text: str
    embedding: Vector
    valence: float = 0.0
    arousal: float = 0.0
    dominance: float = 0.0
    context: dict[str, StoredValue] = field(default_factory=dict)
    source: str = ""

    @classmethod
    def from_input(cls, ep: EpisodeIn, episode_id: uuid.UUID, embedding: Vector) -> Record:
        """Build from a validated :class:`EpisodeIn`; a missing timestamp means now (UTC)."""
        return cls(
            id=episode_id,
            ts=ep.timestamp or datetime.now(UTC),
            text=ep.text,
            embedding=normalize(embedding),
            valence=ep.affect.valence,
            arousal=ep.affect.arousal,
            dominance=ep.affect.dominance,
            context=dict(ep.context),
            source=ep.source,
        )

    def episode(self) -> Episode:
        """The bus form (without the embedding); built once, as records are immutable."""
        ep: Episode | None = self.__dict__.get("_episode")
        if ep is None:
            ep = Episode(
                id=self.id,
                text=self.text,
                timestamp=self.ts,
                affect=Affect(valence=self.valence, arousal=self.arousal, dominance=self.dominance),
                context=self.context,
                source=self.source,
            )
            object.__setattr__(self, "_episode", ep)
        return ep

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable dict without the embedding (L2 slots, the outbox)."""
        return {
            "id": str(self.id),
            "ts": self.ts.isoformat(),
            "text": self.text,
            "affect": [self.valence, self.arousal, self.dominance],
            "context": self.context,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any], embedding: Vector) -> Record:
        """Inverse of :meth:`to_json`."""
        valence, arousal, dominance = obj["affect"]
        return cls(
            id=uuid.UUID(obj["id"]),
            ts=datetime.fromisoformat(obj["ts"]),
            text=obj["text"],
            embedding=embedding,
            valence=valence,
            arousal=arousal,
            dominance=dominance,
            context=obj["context"],
            source=obj["source"],
        )

    def encoded(self) -> bytes:
        """Compact UTF-8 JSON of :meth:`to_json` (computed once: records are immutable)."""
        body: bytes | None = self.__dict__.get("_encoded")
        if body is None:
            body = json.dumps(self.to_json(), separators=(",", ":")).encode()
            object.__setattr__(self, "_encoded", body)
        return body
