"""Contract of the cognition service: ``emily/<node>/cognition/observe`` and the
``emily/<node>/events/workspace.broadcast`` stream.

Declared as :data:`emily.bus.endpoints.OBSERVE`. Example::

    reply = OBSERVE.call(session, keys, ObserveRequest(text="hello"), timeout_s=60)
    print(reply.response, reply.trace.tier, reply.trace.latencies_ms["total"])

Every cycle returns an action, the response text and a :class:`Trace`: which tier
answered, the workspace contents, the expected free energy ``G`` of each policy (nats,
lower is better) with its posterior probability, the memories used with their cosine
scores, per-stage latencies (ms) and what was missing (``memory``, ``inference``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from emily.bus.messages import Message
from emily.bus.schemas.context import ContextValue, StorableStr, check_context
from emily.bus.schemas.dialogue import DEFAULT_USER, Act, Feedback, ScopeName, SessionId
from emily.bus.schemas.perception import MAX_MEDIA_B64, check_b64

MAX_TEXT_CHARS = 4096
"""Longest observation text, in characters."""
MAX_CONTEXT_KEYS = 32
"""Most keys in an observation's ``context``."""

Tier = Literal["reflex", "memory", "deliberation", "clarify"]
Action = Literal[
    "reply", "stop", "refuse", "acknowledge", "repeat", "wait", "recall", "deliberate", "clarify"
]
Policy = Literal["reflex", "recall", "deliberate", "clarify"]
Stage = Literal["reflex", "embed", "workspace", "policy", "recall", "deliberate", "total"]
Missing = Literal["memory", "inference", "embeddings"]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class ObserveRequest(Message):
    """One observation.

    Attributes
    ----------
    text : what was said or seen (1..4096 characters, not only whitespace, no NUL and
        no lone surrogate); empty when the observation is ``audio`` or an ``image``.
    audio, image : a speech clip or an image (base64, at most
        :data:`~emily.bus.schemas.perception.MAX_MEDIA_BYTES` decoded), observed through
        the perception service: its transcript or the text read from it enters the cycle,
        and the episode's context records the modality, the media's sha256 and the model.
        An observation is exactly one of ``text``, ``audio`` and ``image``.
    context : flat JSON (string keys of 1..64 characters, scalar values, strings of at
        most 1,024 characters; see :mod:`emily.bus.schemas.context`), stored with the
        episode.
    allow_llm : false keeps the cycle off the language model (answers from the reflex or
        memory, or asks to clarify).
    max_tokens : most tokens the language model may generate for this answer.
    user, session : whose memory the cycle reads and writes, and the conversation the
        turn belongs to (the laptop has one user, ``default``).
    feedback : ``good`` or ``bad``, about the answer of cycle ``feedback_for`` (the last
        answer in ``session`` when absent); an observation may carry feedback alone,
        with no text. The agent learns from it.
    """

    text: StorableStr = Field(default="", max_length=MAX_TEXT_CHARS)
    audio: str | None = Field(default=None, max_length=MAX_MEDIA_B64)
    image: str | None = Field(default=None, max_length=MAX_MEDIA_B64)
    context: dict[str, ContextValue] = Field(default_factory=dict)
    allow_llm: bool = True
    max_tokens: int = Field(default=128, ge=1, le=4096)
    user: ScopeName = DEFAULT_USER
    session: SessionId | None = None
    feedback: Feedback | None = None
    feedback_for: uuid.UUID | None = None

    @field_validator("audio", "image")
    @classmethod
    def _media(cls, v: str | None) -> str | None:
        return None if v is None else check_b64(v)

    @model_validator(mode="after")
    def _one_kind(self) -> ObserveRequest:
        media = [k for k in ("audio", "image") if getattr(self, k) is not None]
        if len(media) > 1 or (media and self.text):
            given = (["text"] if self.text else []) + media
            raise ValueError(f"an observation is one of text, audio or image; got {given}")
        if self.feedback_for is not None and self.feedback is None:
            raise ValueError("feedback_for needs feedback")
        if not media and not self.text.strip() and self.feedback is None:
            raise ValueError("text must contain something other than whitespace")
        return self

    @property
    def modality(self) -> Literal["text", "audio", "image"]:
        """What kind of observation this is."""
        return "audio" if self.audio is not None else "image" if self.image is not None else "text"

    @field_validator("context")
    @classmethod
    def _ctx(cls, v: dict[str, ContextValue]) -> dict[str, ContextValue]:
        return check_context(v, MAX_CONTEXT_KEYS)


class ReflexTrace(Message):
    """What the reflex decided: best intent, its confidence and the threshold in force."""

    intent: str
    confidence: Probability
    threshold: Probability
    fired: bool
    stage: Literal["ngrams", "minilm"]


class WorkspaceItem(Message):
    """One workspace occupant: kind, content, salience (>= 0) and attention weight."""

    kind: Literal["percept", "memory", "goal", "interoception", "reflex"]
    content: str
    salience: float = Field(ge=0.0)
    weight: Probability


class PolicyScore(Message):
    """Expected free energy ``G`` (nats) and posterior probability of one policy."""

    policy: Policy
    G: float
    probability: Probability


class MemoryUsed(Message):
    """A recalled episode the cycle used, with its cosine score and serving tier."""

    id: uuid.UUID
    text: str
    score: float
    tier: str


class FactUsed(Message):
    """A current fact the cycle's answer drew on: ``subject``'s ``relation`` is ``value``."""

    id: uuid.UUID
    subject: str
    relation: str
    value: str
    score: float | None = None


class Trace(Message):
    """Everything one cycle did (see the module docstring). Latencies are in ms.

    ``act`` is the dialogue act of the user's turn, ``episode_id`` and ``answer_id`` the
    ids of the two episodes the cycle stores (the user's turn, the assistant's answer),
    ``facts`` the facts looked up for a question and ``cited`` the fact and episode ids
    the answer was composed from.
    """

    cycle_id: uuid.UUID
    tier: Tier
    policy: Policy
    reflex: ReflexTrace
    workspace: list[WorkspaceItem]
    policies: list[PolicyScore]
    need: dict[str, Probability]
    memories: list[MemoryUsed]
    latencies_ms: dict[Stage, Annotated[float, Field(ge=0.0)]]
    missing: list[Missing]
    notes: list[str]
    allostasis: dict[str, Probability]
    gamma: float = Field(gt=0.0)
    ttft_ms: float | None = Field(default=None, ge=0.0)
    episode: Literal["stored", "queued", "skipped"]
    act: Act | None = None
    episode_id: uuid.UUID | None = None
    answer_id: uuid.UUID | None = None
    facts: list[FactUsed] = Field(default_factory=list)
    cited: list[uuid.UUID] = Field(default_factory=list)
    learning: dict[str, float] | None = None
    """The agent's learned ``P(success)`` per ``need.policy`` and its count of ``updates``."""


class ObserveReply(Message):
    """The cycle's action, the response text and its :class:`Trace`."""

    action: Action
    response: str
    trace: Trace


class WorkspaceBroadcast(Message):
    """One event on ``emily/<node>/events/workspace.broadcast``: a cycle's winners."""

    cycle: int = Field(ge=0)
    cycle_id: uuid.UUID | None = None
    ignited: bool
    items: list[WorkspaceItem]
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
