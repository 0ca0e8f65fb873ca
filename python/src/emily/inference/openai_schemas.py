"""Request bodies of the OpenAI-compatible API, and their translation to the bus contract.

Each body is checked twice: here for the OpenAI shape (unknown or unsupported fields are
refused by name), then as the bus request it becomes (:class:`ChatRequest`,
:class:`GenerateRequest`), so HTTP and Zenoh enforce the same limits.
Extensions beyond OpenAI's fields, as llama.cpp's server and vLLM accept them:
``top_k``, ``min_p``, ``repeat_penalty`` and ``ignore_eos``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from emily.bus.schemas.inference import ChatMessage, ChatRequest, GenerateRequest


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    seed: int | None = None
    n: Literal[1] = 1
    user: str | None = None
    ignore_eos: bool = False
    presence_penalty: float | None = None
    frequency_penalty: float | None = None

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalty(cls, v: float | None) -> float | None:
        if v:
            raise ValueError("is not supported by this server; use repeat_penalty instead")
        return v

    def sampling(self) -> dict[str, Any]:
        """The sampling fields as keyword arguments of the bus request."""
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "repeat_penalty": self.repeat_penalty,
            "stop": tuple(stop),
            "seed": self.seed,
            "ignore_eos": self.ignore_eos,
            "model": self.model,
            "stream": self.stream,
        }

    @property
    def include_usage(self) -> bool:
        """Whether a streamed response ends with a usage chunk."""
        return bool((self.stream_options or {}).get("include_usage"))


class CompletionBody(_Body):
    """``POST /v1/completions``: one prompt (a string, or a list holding one string)."""

    prompt: str | list[str]

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and len(v) != 1:
            raise ValueError("exactly one prompt per request is supported")
        return v

    def to_bus(self) -> GenerateRequest:
        """The equivalent bus request (raises pydantic's ValidationError)."""
        prompt = self.prompt if isinstance(self.prompt, str) else self.prompt[0]
        return GenerateRequest(prompt=prompt, **self.sampling())


class TextPart(BaseModel):
    """A text part of a message's content list."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class ChatTurn(BaseModel):
    """One OpenAI chat message; content is a string or a list of text parts."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def to_bus(self) -> ChatMessage:
        """The bus message (``developer`` is OpenAI's newer name for ``system``)."""
        text = (
            self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        )
        role = "system" if self.role == "developer" else self.role
        return ChatMessage(role=role, content=text)


class ChatBody(_Body):
    """``POST /v1/chat/completions``."""

    messages: list[ChatTurn] = Field(min_length=1)
    max_completion_tokens: int | None = None

    def to_bus(self) -> ChatRequest:
        """The equivalent bus request (raises pydantic's ValidationError)."""
        args = self.sampling()
        if self.max_completion_tokens is not None:
            args["max_tokens"] = self.max_completion_tokens
        return ChatRequest(messages=tuple(m.to_bus() for m in self.messages), **args)
