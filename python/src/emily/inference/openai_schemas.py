"""Request bodies of the OpenAI-compatible API, and their translation to the bus contract.

Every field of OpenAI's API is named here and falls in one of three groups:

- served: sampling, ``stop``, ``n``, ``logprobs``, penalties, ``logit_bias``,
  ``response_format``, ``tools``/``tool_choice``, streaming;
- accepted and ignored (:data:`IGNORED`): fields that do not change the output here
  (``metadata``, ``store``, ``user``, ``service_tier``...). The response names them in the
  ``x-emily-ignored-fields`` header and the service logs them;
- refused with a 400 that names the field: fields that would change the output and are
  not served (audio, web search, ``echo``, ``suffix``, images...).

A field OpenAI does not have is a 400 too, so a typo is never silently ignored.
Extensions, as llama.cpp's server and vLLM accept them: ``top_k``, ``min_p``,
``repeat_penalty`` and ``ignore_eos``. Each body is then checked a second time as the bus
request it becomes (:class:`ChatRequest`, :class:`GenerateRequest`), so HTTP and Zenoh
enforce the same limits.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from emily.bus.schemas.inference import ChatMessage, ChatRequest, GenerateRequest
from emily.inference.engine import Extras
from emily.inference.structured import Tool, call_text, schema_grammar, tool_grammar

IGNORED = frozenset(
    {
        "metadata",
        "store",
        "service_tier",
        "user",
        "parallel_tool_calls",
        "prompt_cache_key",
        "safety_identifier",
        "prediction",
        "reasoning_effort",
    }
)
_NOT_SERVED = "is not supported by this server"


def _refuse(what: str) -> Any:
    def check(cls: Any, v: Any) -> Any:
        if v is not None and v is not False:
            raise ValueError(f"{_NOT_SERVED}: {what}")
        return v

    return classmethod(check)


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
    n: int = Field(default=1, ge=1, le=8)
    ignore_eos: bool = False
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    # accepted, no effect on the output (see IGNORED)
    metadata: dict[str, Any] | None = None
    store: bool | None = None
    service_tier: str | None = None
    user: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        for token, bias in (v or {}).items():
            if not token.isdigit():
                raise ValueError(f"keys are token ids; {token!r} is not one")
            if not -100.0 <= bias <= 100.0:
                raise ValueError(f"bias of token {token} must be in -100..100")
        return v

    def ignored(self) -> list[str]:
        """The fields given that this server accepts without acting on them."""
        return sorted(f for f in self.model_fields_set if f in IGNORED)

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

    def extras(self, grammar: str | None, logprobs: int | None) -> Extras:
        """Penalties, logit bias, grammar and logprobs for the engine's plan."""
        return Extras(
            grammar=grammar,
            logprobs=logprobs,
            presence_penalty=self.presence_penalty or 0.0,
            frequency_penalty=self.frequency_penalty or 0.0,
            logit_bias={int(t): b for t, b in (self.logit_bias or {}).items()},
        )

    @property
    def include_usage(self) -> bool:
        """Whether a streamed response ends with a usage chunk."""
        return bool((self.stream_options or {}).get("include_usage"))


class CompletionBody(_Body):
    """``POST /v1/completions``: one prompt (a string, or a list holding one string)."""

    prompt: str | list[str]
    logprobs: int | None = Field(default=None, ge=0, le=5)
    best_of: int | None = None
    echo: bool | None = None
    suffix: str | None = None

    _no_echo = field_validator("echo")(_refuse("echo; prepend the prompt yourself"))
    _no_suffix = field_validator("suffix")(_refuse("suffix (fill-in-the-middle)"))

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and len(v) != 1:
            raise ValueError("exactly one prompt per request is supported; use n for more")
        return v

    @model_validator(mode="after")
    def _best_of(self) -> CompletionBody:
        if self.best_of is not None and self.best_of != self.n:
            raise ValueError(f"best_of {_NOT_SERVED} unless it equals n")
        return self

    def to_bus(self) -> GenerateRequest:
        """The equivalent bus request (raises pydantic's ValidationError)."""
        prompt = self.prompt if isinstance(self.prompt, str) else self.prompt[0]
        return GenerateRequest(prompt=prompt, **self.sampling())


class TextPart(BaseModel):
    """A text part of a message's content list (images and audio are refused)."""

    model_config = ConfigDict(extra="forbid")
    type: str
    text: str = ""

    @field_validator("type")
    @classmethod
    def _text_only(cls, v: str) -> str:
        if v != "text":
            raise ValueError(f"content parts of type {v!r} {_NOT_SERVED}; send text parts")
        return v


class FunctionCall(BaseModel):
    """The function of a tool call in an assistant message."""

    name: str
    arguments: str = "{}"


class ToolCallIn(BaseModel):
    """A tool call the assistant made earlier in the conversation."""

    model_config = ConfigDict(extra="ignore")
    id: str = ""
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatTurn(BaseModel):
    """One OpenAI chat message; content is a string, a list of text parts, or none."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    # fields clients echo back from an earlier response; they carry nothing here
    refusal: str | None = None
    annotations: list[Any] | None = None
    audio: Any = None
    function_call: Any = None

    def text(self) -> str:
        """The content as one string."""
        if self.content is None:
            return ""
        return (
            self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        )


class FunctionSpec(BaseModel):
    """A function offered as a tool."""

    model_config = ConfigDict(extra="ignore")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    strict: bool | None = None


class ToolSpec(BaseModel):
    """An entry of ``tools``."""

    type: Literal["function"]
    function: FunctionSpec


class JsonSchemaSpec(BaseModel):
    """``response_format.json_schema``."""

    model_config = ConfigDict(extra="ignore")
    name: str = "response"
    schema_: dict[str, Any] = Field(default_factory=lambda: {"type": "object"}, alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(BaseModel):
    """``response_format``: ``text``, ``json_object`` or ``json_schema``."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


class ChatBody(_Body):
    """``POST /v1/chat/completions``."""

    messages: list[ChatTurn] = Field(min_length=1)
    max_completion_tokens: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    prediction: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    modalities: list[str] | None = None
    audio: Any = None
    web_search_options: Any = None
    functions: Any = None
    function_call: Any = None
    verbosity: str | None = None

    _no_audio = field_validator("audio")(_refuse("audio output"))
    _no_search = field_validator("web_search_options")(_refuse("web search"))
    _no_functions = field_validator("functions", "function_call")(
        _refuse("the deprecated functions API; send tools and tool_choice")
    )
    _no_verbosity = field_validator("verbosity")(_refuse("verbosity"))

    @field_validator("modalities")
    @classmethod
    def _text_out(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and v != ["text"]:
            raise ValueError(f"only ['text'] is served; {v} {_NOT_SERVED}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ChatBody:
        self.choice()
        fmt = self.response_format
        if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is None:
            raise ValueError("response_format json_schema needs its json_schema object")
        if self.tool_choice not in (None, "none") and not self.tools:
            raise ValueError("tool_choice needs tools")
        return self

    def tool_list(self) -> list[Tool]:
        """The offered tools."""
        return [
            Tool(t.function.name, t.function.description, t.function.parameters)
            for t in self.tools or []
        ]

    def choice(self) -> str | None:
        """``tool_choice`` as ``none``/``auto``/``required``, a function name, or ``None``."""
        c = self.tool_choice
        if isinstance(c, dict):
            name = (c.get("function") or {}).get("name")
            if c.get("type") != "function" or not isinstance(name, str):
                raise ValueError(
                    'tool_choice must be none, auto, required or {"type": "function", '
                    '"function": {"name": ...}}'
                )
            return name
        return c

    def grammar(self) -> str | None:
        """The grammar of the answer: a tool call, a JSON value, or ``None`` for free text."""
        tools = self.tool_list()
        if tools and self.choice() != "none":
            return tool_grammar(tools, self.choice())
        fmt = self.response_format
        if fmt is None or fmt.type == "text":
            return None
        if fmt.type == "json_object":
            return schema_grammar({"type": "object"})
        assert fmt.json_schema is not None  # checked by the validator
        return schema_grammar(fmt.json_schema.schema_)

    def n_logprobs(self) -> int | None:
        """Top alternatives per token when ``logprobs`` is on, else ``None``."""
        return (self.top_logprobs or 0) if self.logprobs else None

    def to_bus(self, tool_prompt: str | None = None) -> ChatRequest:
        """The equivalent bus request (raises pydantic's ValidationError).

        ``tool_prompt`` (the tools' description) goes first as a system message. A tool
        result becomes a user turn that names the tool; an assistant's earlier call
        becomes the JSON the model would write for it.
        """
        args = self.sampling()
        if self.max_completion_tokens is not None:
            args["max_tokens"] = self.max_completion_tokens
        names = {c.id: c.function.name for m in self.messages for c in m.tool_calls or []}
        turns = [ChatMessage(role="system", content=tool_prompt)] if tool_prompt else []
        for m in self.messages:
            if m.role == "tool":
                name = names.get(m.tool_call_id or "", m.name or "the tool")
                turns.append(ChatMessage(role="user", content=f"Result of {name}: {m.text()}"))
            elif m.role == "assistant" and m.tool_calls:
                calls = [call_text(c.function.name, c.function.arguments) for c in m.tool_calls]
                text = " ".join([m.text(), *calls]).strip()
                turns.append(ChatMessage(role="assistant", content=text))
            else:
                role = "system" if m.role == "developer" else m.role
                turns.append(ChatMessage(role=role, content=m.text()))
        return ChatRequest(messages=tuple(turns), **args)
