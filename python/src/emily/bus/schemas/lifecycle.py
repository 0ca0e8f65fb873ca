"""Memory's lifecycle verbs: ``memory/{forget,correct,export,events,rebuild}``.

Forgetting is total: the episode leaves every tier (GPU, RAM, NVMe slots, Postgres),
the in-process index and the outbox, and every fact drawn only from it goes too;
nothing comes back after a restart or a consolidation. Correcting replaces an
episode's text (re-embedded, its facts re-drawn). Export pages through one user's
episodes and facts. Every change is appended to the event log; ``events`` reads the
log from a sequence number, and ``rebuild`` rebuilds the in-process index and the tier
map from Postgres and the log. Example::

    reply = FORGET.call(session, keys, ForgetRequest(match="my password"), timeout_s=10)
    print(reply.forgotten, reply.facts_removed)
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from emily.bus.messages import Message
from emily.bus.schemas.context import StorableStr
from emily.bus.schemas.dialogue import DEFAULT_USER, ScopeName
from emily.bus.schemas.facts import Fact
from emily.bus.schemas.memory import MAX_BATCH, MAX_TEXT_CHARS, Episode

#: Most episodes or events in one export or events reply.
MAX_PAGE = 1000


class ForgetRequest(Message):
    """Forget episodes of ``user``: those in ``ids``, or those whose text contains
    ``match`` (case-insensitive). Exactly one of the two. ``dry_run`` reports what
    would go without forgetting it."""

    user: ScopeName = DEFAULT_USER
    ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=MAX_BATCH)
    match: StorableStr | None = Field(default=None, min_length=1, max_length=MAX_TEXT_CHARS)
    dry_run: bool = False

    @model_validator(mode="after")
    def _one(self) -> ForgetRequest:
        if (self.ids is None) == (self.match is None):
            raise ValueError("give exactly one of ids or match")
        return self


class ForgetReply(Message):
    """The episodes forgotten (or that would be, on a dry run) and the facts removed
    with them; ids of ``user`` that were not found are in ``missing``."""

    forgotten: list[uuid.UUID]
    missing: list[uuid.UUID] = Field(default_factory=list)
    facts_removed: int = Field(ge=0)
    dry_run: bool = False


class CorrectRequest(Message):
    """Replace the text of episode ``id`` of ``user`` with ``text``."""

    user: ScopeName = DEFAULT_USER
    id: uuid.UUID
    text: StorableStr = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class CorrectReply(Message):
    """The corrected episode and the facts now drawn from it."""

    episode: Episode
    facts: list[Fact]


class ExportRequest(Message):
    """One page of ``user``'s memory, oldest first, after episode id ``after``."""

    user: ScopeName = DEFAULT_USER
    after: uuid.UUID | None = None
    limit: int = Field(default=MAX_PAGE, ge=1, le=MAX_PAGE)
    facts: bool = True


class ExportReply(Message):
    """Episodes of the page; every fact of the user (current and superseded) on the
    first page when asked; ``next`` is the ``after`` of the next page, ``None`` at the
    end."""

    episodes: list[Episode]
    facts: list[Fact]
    next: uuid.UUID | None = None


class EventsRequest(Message):
    """Events of the log with sequence number greater than ``since``.

    ``media``: SHA-256s of media files to look up; the reply's ``named`` says which of
    them an episode (of any user, stored or still queued) names. A reader that missed
    trimmed events reconciles its media with it.
    """

    since: int = Field(default=0, ge=0)
    limit: int = Field(default=MAX_PAGE, ge=1, le=MAX_PAGE)
    media: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(
        default_factory=list, max_length=MAX_PAGE
    )


class MemoryEvent(Message):
    """One logged state change (see :class:`~emily.bus.schemas.memory.MemoryOperation`)."""

    seq: int = Field(ge=1)
    op: Literal["store", "merge", "correct", "forget", "fact", "supersede", "promote", "demote"]
    at: datetime
    user: str | None = None
    episode_id: uuid.UUID | None = None
    fact_id: uuid.UUID | None = None
    detail: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class EventsReply(Message):
    """Events in sequence order; ``last`` is the log's newest sequence number.

    ``trimmed``: every event up to this sequence number left the log (its retention);
    a reader whose ``since`` is below it missed events and must resynchronize from
    memory itself. ``named``: the request's ``media`` that an episode still names.
    """

    events: list[MemoryEvent]
    last: int = Field(ge=0)
    trimmed: int = Field(default=0, ge=0)
    named: list[str] = Field(default_factory=list, max_length=MAX_PAGE)


class RebuildRequest(Message):
    """``memory/rebuild``: no fields."""


class RebuildReply(Message):
    """How many episodes the rebuilt index holds, the tier sizes after it, whether the
    rebuilt projection matched the one it replaced, and how long it took."""

    indexed: int = Field(ge=0)
    tiers: dict[str, int]
    matched: bool
    took_ms: float = Field(ge=0.0)
