"""Facts drawn from what a user said: ``memory/{facts,consolidate}``.

A fact is a subject-relation-value triple (``user``'s ``dog`` ``name`` = ``Rex``) with
the episodes it was drawn from and its validity: ``valid_from`` when it was said,
``valid_to`` when a newer value for the same subject and relation superseded it
(``None`` while current). Superseded facts stay in the history and are never given as
current. Consolidation draws facts from user statements (a deterministic extractor of
first-person patterns always, and the language model's schema-constrained JSON when
one is configured), merges near-identical statements and supersedes changed values.
Example::

    reply = FACTS.call(session, keys, FactsRequest(text="what is my dog called"), timeout_s=5)
    for fact in reply.facts:
        print(fact.subject, fact.relation, fact.value, fact.sources)
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from emily.bus.messages import Message
from emily.bus.schemas.context import StorableStr
from emily.bus.schemas.dialogue import DEFAULT_USER, ScopeName

#: Longest subject, relation or value of a fact, in characters.
MAX_TERM_CHARS = 256
#: Most facts one query returns.
MAX_FACTS = 100


class Fact(Message):
    """One fact; ``score`` is its match to the query (higher is closer) when queried."""

    id: uuid.UUID
    user: str
    agent: str | None = None
    subject: str
    relation: str
    value: str
    valid_from: datetime
    valid_to: datetime | None = None
    sources: list[uuid.UUID]
    count: int = Field(ge=1)
    last_seen: datetime
    extractor: Literal["patterns", "llm"] = "patterns"
    score: float | None = None

    @property
    def current(self) -> bool:
        """True while no newer value has superseded this one."""
        return self.valid_to is None


class FactsRequest(Message):
    """``user``'s facts matching ``text`` (hybrid: vector, full text and the entity
    graph) or exactly ``subject``/``relation``; at least one of the three. Superseded
    facts only with ``history``."""

    user: ScopeName = DEFAULT_USER
    agent: ScopeName | None = None
    text: StorableStr | None = Field(default=None, min_length=1, max_length=4096)
    subject: StorableStr | None = Field(default=None, min_length=1, max_length=MAX_TERM_CHARS)
    relation: StorableStr | None = Field(default=None, min_length=1, max_length=MAX_TERM_CHARS)
    history: bool = False
    k: int = Field(default=5, ge=1, le=MAX_FACTS)

    @model_validator(mode="after")
    def _some(self) -> FactsRequest:
        if self.text is None and self.subject is None and self.relation is None:
            raise ValueError("give text, subject or relation")
        return self


class FactsReply(Message):
    """Facts, best first."""

    facts: list[Fact]
    took_ms: float = Field(ge=0.0)


class ConsolidateRequest(Message):
    """Consolidate up to ``limit`` unconsolidated episodes (of ``user``, or of every
    user when ``None``)."""

    user: ScopeName | None = None
    limit: int = Field(default=1000, ge=1, le=100_000)


class ConsolidateReply(Message):
    """What one pass did: episodes read, facts added, superseded and reinforced,
    statements merged, and its time."""

    episodes: int = Field(ge=0)
    facts_added: int = Field(ge=0)
    facts_superseded: int = Field(ge=0)
    facts_reinforced: int = Field(ge=0)
    merged: int = Field(ge=0)
    took_ms: float = Field(ge=0.0)
