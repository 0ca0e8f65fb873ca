"""Carrying out the chosen policy: reflex answer, acknowledgement, deliberation, clarify.

Answers drawn from memory are composed in :mod:`emily.cognition.dialogue.answer`.

Texts (system prompt, templates) live in ``data/prompts.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from emily.bus.schemas.inference import ChatMessage
from emily.bus.schemas.memory import Hit
from emily.cognition.reflex import data as rdata


@lru_cache(maxsize=1)
def prompts() -> dict[str, Any]:
    """The prompt templates of ``data/prompts.json``."""
    data: dict[str, Any] = json.loads(rdata.data_path("prompts.json").read_text(encoding="utf-8"))
    return data


@dataclass(frozen=True)
class Outcome:
    """The action kind and the response text of a cycle."""

    action: str
    response: str


def reflex_answer(intent: str) -> Outcome:
    """The canned response of ``intent`` (used when the agent picks the reflex policy)."""
    canned = rdata.load_responses().get(intent)
    if canned is None:
        return clarify_answer("")
    return Outcome(canned.action, canned.render())


def acknowledge() -> Outcome:
    """The reply to a statement: it is remembered, not answered."""
    return Outcome("acknowledge", prompts()["acknowledge"])


def clarify_answer(text: str) -> Outcome:
    """Ask the user to say more."""
    short = text if len(text) <= 80 else text[:77] + "..."
    return Outcome("clarify", prompts()["clarify"].format(text=short))


def no_llm_answer() -> Outcome:
    """What to say when deliberation was needed but the LLM is unavailable."""
    return Outcome("clarify", prompts()["fallback_no_llm"])


def chat_messages(text: str, hits: list[Hit], max_notes: int = 3) -> list[ChatMessage]:
    """System prompt, recalled memories as context, then the user's text."""
    p = prompts()
    system = p["system"]
    if hits:
        notes = "\n".join(f"- {h.episode.text}" for h in hits[:max_notes])
        system = f"{system}\n\n{p['memory_header']}\n{notes}"
    return [ChatMessage(role="system", content=system), ChatMessage(role="user", content=text)]
