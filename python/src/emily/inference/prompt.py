"""Turning a conversation into a prompt: the GGUF's chat template, or a few-shot fallback.

Models without a chat template (the embedded Gemma 3 270M is one) behave like base
models: fed chat markup they answer with nothing or ramble. For them the conversation is
rendered as a completion-style transcript after a few example turns (``data/fewshot.json``),
and a newline ends the answer.

A rendered prompt keeps the template's text apart from the messages' text
(:attr:`Prompt.parts`): only the template's text may contain control tokens, so a user
who types ``<start_of_turn>`` gets those characters, never the token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from emily.bus.schemas.inference import ChatMessage
from emily.inference.errors import BadRequest

ChatFormat = Literal["template", "fewshot"]
# Private-use code points: a rendered template holds them only where a message was.
_MARK = re.compile("\ue000(\\d+)\ue001")


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt and the stop strings that end its answer.

    Attributes
    ----------
    text : the whole prompt.
    stop : stop strings of the format.
    parts : ``text`` cut into ``(piece, is_markup)``; only markup pieces are tokenised
        with control tokens. Empty means all of ``text`` is markup (a raw prompt).
    prefix_chars : length of the leading run of ``text`` that depends only on the system
        message (the cacheable prefix), in characters; 0 when there is none.
    """

    text: str
    stop: tuple[str, ...]
    parts: tuple[tuple[str, bool], ...] = ()
    prefix_chars: int = 0


@cache
def fewshot_spec() -> dict[str, Any]:
    """The few-shot format from ``emily/inference/data/fewshot.json``."""
    raw = resources.files("emily.inference").joinpath("data/fewshot.json").read_text("utf-8")
    spec: dict[str, Any] = json.loads(raw)
    return spec


def render_fewshot(messages: Sequence[ChatMessage]) -> Prompt:
    """Render ``messages`` as a transcript that ends with the assistant's prefix.

    The format has no control tokens, so all of it is tokenised as plain text, in two
    parts: the system text with the examples (the cacheable prefix), and the turns.
    """
    spec = fewshot_spec()
    user, assistant = spec["user_prefix"], spec["assistant_prefix"]
    system = " ".join(m.content for m in messages if m.role == "system")
    lines = [system or spec["preamble"], ""]
    for ex in spec["examples"]:
        lines += [f"{user}{ex['user']}", f"{assistant} {ex['assistant']}"]
    head = "\n".join(lines) + "\n"
    turns = []
    for m in messages:
        if m.role == "user":
            turns.append(f"{user}{' '.join(m.content.split())}")
        elif m.role == "assistant":
            turns.append(f"{assistant} {' '.join(m.content.split())}")
    tail = "\n".join([*turns, assistant])
    return Prompt(head + tail, tuple(spec["stop"]), ((head, False), (tail, False)), len(head))


class TemplateFormatter:
    """Renders conversations with a GGUF's own Jinja chat template."""

    def __init__(self, template: str, bos_token: str, eos_token: str) -> None:
        self._bos = bos_token
        self._formatter = Jinja2ChatFormatter(
            template=template, eos_token=eos_token, bos_token=bos_token
        )

    def _render(self, turns: list[dict[str, Any]]) -> str:
        try:
            text: str = self._formatter(messages=turns).prompt  # type: ignore[arg-type]
        except Exception as exc:  # jinja raises for conversations a template forbids
            raise BadRequest(f"the model's chat template rejected the messages: {exc}") from exc
        if self._bos and text.startswith(self._bos):
            text = text[len(self._bos) :]  # llama.cpp adds BOS itself when tokenizing
        return text

    def __call__(self, messages: Sequence[ChatMessage]) -> Prompt:
        """Render ``messages`` with the generation prompt appended.

        The template is rendered a second time with a marker in place of each message;
        the markup between the markers is the template's own text, and each message's
        text (as is, or trimmed if the template trims) is put back between them.
        """
        turns: list[dict[str, Any]] = [{"role": m.role, "content": m.content} for m in messages]
        text = self._render(turns)
        stop_raw = self._formatter(messages=turns).stop  # type: ignore[arg-type]
        stop = tuple(stop_raw if isinstance(stop_raw, list) else [stop_raw] if stop_raw else [])
        marked = self._render([t | {"content": f"\ue000{i}\ue001"} for i, t in enumerate(turns)])
        pieces = _MARK.split(marked)  # markup, index, markup, index, ..., markup
        parts: list[tuple[str, bool]] = []
        at, prefix = 0, 0
        for k in range(0, len(pieces), 2):
            markup = pieces[k]
            if not text.startswith(markup, at):
                break
            parts.append((markup, True))
            at += len(markup)
            if k + 1 == len(pieces):
                break
            i, after = int(pieces[k + 1]), pieces[k + 2]
            content = messages[i].content
            for candidate in (content, content.strip()):
                if text.startswith(candidate, at) and text.startswith(after, at + len(candidate)):
                    break
            else:
                break
            parts.append((candidate, False))
            at += len(candidate)
            if all(m.role == "system" for m in messages[: i + 1]):
                prefix = at
        kept = tuple(p for p in parts if p[0])
        if at != len(text) or "".join(p for p, _ in kept) != text:
            # the template rewrites message text beyond trimming: markup and content
            # cannot be told apart, so nothing is tokenised as a control token
            return Prompt(text, stop, ((text, False),), 0)
        return Prompt(text, stop, kept, prefix)
