"""Contract of the inference service: ``emily/<node>/inference/{generate,chat,cancel,info}``.

Requests
--------
:class:`GenerateRequest` (verb ``generate``) continues a raw prompt; :class:`ChatRequest`
(verb ``chat``) answers a conversation, formatted with the model's chat template, or with
a few-shot completion prompt when the model has none. Sampling fields left at ``None``
take the service's configured defaults.

Replies
-------
Both verbs reply with :class:`GenerationChunk` messages. With ``stream=False`` there is
exactly one reply, carrying the whole text, ``done=True`` and the usage. With
``stream=True`` there is one reply per generated piece (``index`` 0, 1, ...) and the
last one has ``done=True``, its ``finish_reason`` and the usage; clients use
``CHAT.stream`` (:mod:`emily.bus.endpoints`). Errors arrive as
:class:`~emily.bus.messages.ErrorReply`:
``bad_request`` (oversize prompt, invalid sampling), ``not_found`` (unknown model),
``busy`` (queue full; ``retry_after_s`` says when to retry), ``timeout`` (waited too
long in the queue).

Cancellation
------------
A caller that sets ``request_id`` can stop its request with :class:`CancelRequest`
(verb ``cancel``): a queued request leaves the queue, a running one stops after the
current token with ``finish_reason="cancelled"``. Either way its queue slot is freed.

Example::

    req = ChatRequest(messages=(ChatMessage(role="user", content="Hi"),), max_tokens=32)
    reply = CHAT.call(session, Keys(node), req, timeout_s=60)  # emily.bus.endpoints.CHAT
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, field_validator

from emily.bus.messages import Message

MAX_PROMPT_CHARS = 1_000_000
MAX_STOP = 8
MAX_MESSAGES = 512
MAX_SCHEMA_BYTES = 16 << 10
RequestId = str
FinishReason = Literal["stop", "length", "cancelled", "timeout"]


class Sampling(Message):
    """Sampling settings shared by both request kinds; ``None`` means the service default.

    Attributes
    ----------
    max_tokens : most tokens to generate (1..32768).
    temperature : softmax temperature, 0 is greedy (0..2).
    top_p : nucleus mass (0, 1].
    top_k : candidates kept, 0 keeps all.
    min_p : minimum probability relative to the best token [0, 1].
    repeat_penalty : penalty on repeated tokens (0, 2].
    stop : up to 8 strings that end the generation (not included in the text).
    seed : RNG seed, for reproducible sampling.
    ignore_eos : keep generating past end-of-sequence (benchmarks: a fixed token count).
    json_schema : a JSON schema the output must satisfy (enforced by a grammar, so the
        text always parses as one JSON value of that schema); at most 16 KiB as JSON.
    """

    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0, le=100_000)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(default=None, gt=0.0, le=2.0)
    stop: tuple[str, ...] = Field(default=(), max_length=MAX_STOP)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    ignore_eos: bool = False
    json_schema: dict[str, Any] | None = None

    @field_validator("json_schema")
    @classmethod
    def _schema_size(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None and len(json.dumps(v)) > MAX_SCHEMA_BYTES:
            raise ValueError(f"json_schema is at most {MAX_SCHEMA_BYTES} bytes as JSON")
        return v


class GenerateRequest(Sampling):
    """Continue ``prompt`` (verb ``generate``).

    Attributes
    ----------
    prompt : raw text, at most 1,000,000 characters; the token limit is the context.
    model : served model name; ``None`` accepts whatever the service serves.
    stream : one reply per chunk when true, else a single reply.
    request_id : caller-chosen id, needed only to cancel (1..64 chars of ``[A-Za-z0-9_.-]``).
    """

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: str | None = Field(default=None, max_length=256)
    stream: bool = False
    request_id: RequestId | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class ChatMessage(Message):
    """One turn of a conversation."""

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_PROMPT_CHARS)


class ChatRequest(Sampling):
    """Answer a conversation (verb ``chat``); the last message is usually the user's.

    Attributes
    ----------
    messages : 1..512 turns, oldest first.
    model, stream, request_id : as in :class:`GenerateRequest`.
    """

    messages: tuple[ChatMessage, ...] = Field(min_length=1, max_length=MAX_MESSAGES)
    model: str | None = Field(default=None, max_length=256)
    stream: bool = False
    request_id: RequestId | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class Usage(Message):
    """Token counts of one request (tokens)."""

    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)


class GenerationChunk(Message):
    """A piece of generated text; the last piece of a request has ``done=True``.

    Attributes
    ----------
    request_id : the caller's id, or one the service assigned.
    model : the model that generated the text.
    index : position of this chunk in the stream, from 0.
    text : generated text of this chunk (the whole text when not streaming).
    done : true on the last chunk only.
    finish_reason : on the last chunk: ``stop`` (end of sequence or a stop string),
        ``length`` (max_tokens), ``cancelled`` or ``timeout`` (request deadline).
    usage : on the last chunk: prompt and completion token counts.
    ttft_ms : on the last chunk: time from arrival to the first token, in ms.
    latency_ms : on the last chunk: time from arrival to the last token, in ms.
    """

    request_id: str
    model: str
    index: int = Field(ge=0)
    text: str
    done: bool = False
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    ttft_ms: float | None = Field(default=None, ge=0.0)
    latency_ms: float | None = Field(default=None, ge=0.0)


class CancelRequest(Message):
    """Stop the request ``request_id`` (verb ``cancel``)."""

    request_id: RequestId = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class CancelReply(Message):
    """Whether a queued or running request with that id was found and cancelled."""

    request_id: str
    cancelled: bool


class InfoRequest(Message):
    """Ask the service what it serves (verb ``info``)."""


class InferenceInfo(Message):
    """What the service runs on, as loaded (not as configured).

    Attributes
    ----------
    model : served model name; model_path : its GGUF file.
    backend : ``cpu`` or ``cuda``; device : e.g. ``Tesla P4 (sm_61)`` or the CPU model.
    gpu_offload_supported : whether this llama.cpp build can offload at all.
    n_gpu_layers, n_ctx, n_threads : effective settings (layers, tokens, threads).
    chat_format : ``template`` (the GGUF's own) or ``fewshot``.
    queue_size, queue_depth : configured bound and requests waiting now.
    """

    model: str
    model_path: str
    backend: Literal["cpu", "cuda", "metal", "vulkan", "other"]
    device: str
    gpu_offload_supported: bool
    n_gpu_layers: int
    n_ctx: int
    n_threads: int
    chat_format: Literal["template", "fewshot"]
    queue_size: int
    queue_depth: int
