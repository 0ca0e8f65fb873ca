"""The two episodes a cycle stores, and what a recall for a turn asks memory for.

A cycle stores the user's turn (role ``user``, its classified act, the percept's
embedding) and the assistant's answer (role ``assistant``, act ``answer``,
``reply_to`` the user's turn, no embedding: memory embeds it off cognition's path),
both in the request's user scope and session, with time-ordered UUIDv7 ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from emily.bus.schemas.cognition import ObserveRequest
from emily.bus.schemas.context import MAX_VALUE_CHARS
from emily.bus.schemas.memory import RecallFilters

#: Most context keys an episode carries (the observation's own come first).
MAX_EPISODE_CONTEXT = 64


def feedback_only(request: ObserveRequest) -> bool:
    """Whether ``request`` carries feedback and nothing to answer."""
    return request.feedback is not None and request.modality == "text" and not request.text.strip()


def recall_filters(told: bool, act: str = "question") -> RecallFilters:
    """What a turn recalls. A question: the user's statements, or for "what did you tell
    me about X" the assistant's answers. Another turn recalls the user's statements and
    commands as context (a note "please water the tomatoes" is recalled by its twin).
    Never a question."""
    if act != "question":
        return RecallFilters(roles=["user"], acts=["statement", "command"])
    if told:
        return RecallFilters(roles=["assistant"], acts=["answer"])
    return RecallFilters(roles=["user"], acts=["statement"])


def _context(request: ObserveRequest, extra: dict[str, str]) -> dict[str, object]:
    ctx: dict[str, object] = dict(request.context)
    ctx.update(extra)
    if len(ctx) > MAX_EPISODE_CONTEXT:
        ctx = dict(list(ctx.items())[-MAX_EPISODE_CONTEXT:])
    return ctx


def user_turn(
    cycle_id: uuid.UUID,
    request: ObserveRequest,
    act: str,
    embedding: Sequence[float] | None,
    policy: str,
    response: str,
) -> dict[str, object]:
    """The fields of the user's turn (an :class:`~emily.bus.schemas.memory.EpisodeIn`)."""
    extra = {"cycle_id": str(cycle_id), "policy": policy, "response": response[:MAX_VALUE_CHARS]}
    return {
        "id": cycle_id,
        "text": request.text,
        "embedding": None if embedding is None else list(embedding),
        "context": _context(request, extra),
        "source": "cognition",
        "user": request.user,
        "role": "user",
        "act": act,
        "session": request.session,
    }


def assistant_turn(
    answer_id: uuid.UUID,
    cycle_id: uuid.UUID,
    request: ObserveRequest,
    response: str,
    policy: str,
) -> dict[str, object]:
    """The fields of the assistant's answer to the user's turn ``cycle_id``."""
    return {
        "id": answer_id,
        "text": response,
        "context": {"cycle_id": str(cycle_id), "policy": policy},
        "source": "cognition",
        "user": request.user,
        "role": "assistant",
        "act": "answer",
        "session": request.session,
        "reply_to": cycle_id,
    }
