"""The in-process form of an episode, shared by every tier."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from emily.bus.schemas.dialogue import DEFAULT_USER, Act, Role
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
    """One episode with its unit-norm embedding ``(384,) float32``, and its scope
    (``user``, ``agent``) and place in a conversation (``role``, ``act``, ``session``,
    ``reply_to``)."""

    id: uuid.UUID
    ts: datetime
    text: str
    embedding: Vector
    valence: float = 0.0
    arousal: float = 0.0
    dominance: float = 0.0
    context: dict[str, StoredValue] = field(default_factory=dict)
    source: str = ""
    user: str = DEFAULT_USER
    agent: str | None = None
    role: Role = "user"
    act: Act = "statement"
    session: str | None = None
    reply_to: uuid.UUID | None = None
    repeats: int = 1
    last_seen: datetime | None = None

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
            user=ep.user,
            agent=ep.agent,
            role=ep.role,
            act=ep.act,
            session=ep.session,
            reply_to=ep.reply_to,
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
                user=self.user,
                agent=self.agent,
                role=self.role,
                act=self.act,
                session=self.session,
                reply_to=self.reply_to,
                repeats=self.repeats,
                last_seen=self.last_seen,
            )
            object.__setattr__(self, "_episode", ep)
        return ep

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable dict without the embedding (L2 slots, the outbox).

        Scope and dialogue fields at their defaults are left out, so a default
        user's statement takes no more slot space than before they existed.
        """
        out: dict[str, Any] = {
            "id": str(self.id),
            "ts": self.ts.isoformat(),
            "text": self.text,
            "affect": [self.valence, self.arousal, self.dominance],
            "context": self.context,
            "source": self.source,
        }
        for name, default in _DEFAULTS.items():
            value = getattr(self, name)
            if value != default:
                out[name] = value.isoformat() if isinstance(value, datetime) else value
        if self.reply_to is not None:
            out["reply_to"] = str(self.reply_to)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any], embedding: Vector) -> Record:
        """Inverse of :meth:`to_json`; a slot or outbox line written before the scope
        and dialogue fields existed reads with their defaults."""
        valence, arousal, dominance = obj["affect"]
        reply_to = obj.get("reply_to")
        last_seen = obj.get("last_seen")
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
            user=obj.get("user", DEFAULT_USER),
            agent=obj.get("agent"),
            role=obj.get("role", "user"),
            act=obj.get("act", "statement"),
            session=obj.get("session"),
            reply_to=None if reply_to is None else uuid.UUID(reply_to),
            repeats=int(obj.get("repeats", 1)),
            last_seen=None if last_seen is None else datetime.fromisoformat(last_seen),
        )

    def encoded(self) -> bytes:
        """Compact UTF-8 JSON of :meth:`to_json` (computed once: records are immutable)."""
        body: bytes | None = self.__dict__.get("_encoded")
        if body is None:
            body = json.dumps(self.to_json(), separators=(",", ":")).encode()
            object.__setattr__(self, "_encoded", body)
        return body


#: Fields :meth:`Record.to_json` writes only when they differ from these.
_DEFAULTS: dict[str, object] = {
    "user": DEFAULT_USER,
    "agent": None,
    "role": "user",
    "act": "statement",
    "session": None,
    "repeats": 1,
    "last_seen": None,
}
