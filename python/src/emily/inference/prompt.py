"""Turning a conversation into a prompt: the GGUF's chat template, or a few-shot fallback.

Models without a chat template (the embedded Gemma 3 270M is one) behave like base
models: fed chat markup they answer with nothing or ramble. For them the conversation is
rendered as a completion-style transcript after a few example turns (``data/fewshot.json``),
and a newline ends the answer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from emily.bus.schemas.inference import ChatMessage
from emily.inference.errors import BadRequest

ChatFormat = Literal["template", "fewshot"]


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt and the stop strings that end its answer."""

    text: str
    stop: tuple[str, ...]


@cache
def fewshot_spec() -> dict[str, Any]:
    """The few-shot format from ``emily/inference/data/fewshot.json``."""
    raw = resources.files("emily.inference").joinpath("data/fewshot.json").read_text("utf-8")
    spec: dict[str, Any] = json.loads(raw)
    return spec


def render_fewshot(messages: Sequence[ChatMessage]) -> Prompt:
    """Render ``messages`` as a transcript that ends with the assistant's prefix."""
    spec = fewshot_spec()
    user, assistant = spec["user_prefix"], spec["assistant_prefix"]
    system = " ".join(m.content for m in messages if m.role == "system")
    lines = [system or spec["preamble"], ""]
    for ex in spec["examples"]:
        lines += [f"{user}{ex['user']}", f"{assistant} {ex['assistant']}"]
    for m in messages:
        if m.role == "user":
            lines.append(f"{user}{' '.join(m.content.split())}")
        elif m.role == "assistant":
            lines.append(f"{assistant} {' '.join(m.content.split())}")
    lines.append(assistant)
    return Prompt("\n".join(lines), tuple(spec["stop"]))


class TemplateFormatter:
    """Renders conversations with a GGUF's own Jinja chat template."""

    def __init__(self, template: str, bos_token: str, eos_token: str) -> None:
        self._bos = bos_token
        self._formatter = Jinja2ChatFormatter(
            template=template, eos_token=eos_token, bos_token=bos_token
        )

    def __call__(self, messages: Sequence[ChatMessage]) -> Prompt:
        """Render ``messages`` with the generation prompt appended."""
        try:
            turns: list[Any] = [{"role": m.role, "content": m.content} for m in messages]
            out = self._formatter(messages=turns)
        except Exception as exc:  # jinja raises for conversations a template forbids
            raise BadRequest(f"the model's chat template rejected the messages: {exc}") from exc
        text = out.prompt
        if self._bos and text.startswith(self._bos):
            text = text[len(self._bos) :]  # llama.cpp adds BOS itself when tokenizing
        stop = out.stop if isinstance(out.stop, list) else [out.stop] if out.stop else []
        return Prompt(text, tuple(stop))
