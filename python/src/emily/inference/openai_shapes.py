"""OpenAI response shapes: whole responses and SSE chunks of both endpoints.

A request with ``n`` choices runs as ``n`` jobs; their events arrive on one queue as
``(index, event)``. With tools offered, an answer that starts with ``{`` is held back
until it ends and then sent as a tool call (streamed as ``tool_calls`` deltas: the id
and name first, then the arguments), else as text.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from emily.bus.schemas.inference import FinishReason
from emily.inference.errors import InferenceError
from emily.inference.sampler import TokenLogprob
from emily.inference.scheduler import Done, Event, Failed, Piece
from emily.inference.structured import Tool, ToolCall, parse_call

Indexed = tuple[int, Event]
TokenText = Callable[[int], bytes]
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}
_TYPES |= {429: "rate_limit_error", 503: "server_error", 500: "server_error"}


def error_body(status: int, message: str, code: str, param: str | None = None) -> dict[str, Any]:
    """The one error envelope: ``{"error": {"message", "type", "code", "param"}}``."""
    err = {"message": message, "type": _TYPES.get(status, "server_error"), "code": code}
    return {"error": err | {"param": param}}


def finish(reason: FinishReason, call: ToolCall | None = None) -> str:
    """OpenAI's finish reason for ours."""
    if call is not None:
        return "tool_calls"
    return "length" if reason == "timeout" else reason if reason != "cancelled" else "stop"


def usage(dones: Sequence[Done]) -> dict[str, int]:
    """Token counts of all choices (the prompt counted once)."""
    prompt = dones[0].prompt_tokens if dones else 0
    completion = sum(d.completion_tokens for d in dones)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


@dataclass
class _Choice:
    texts: list[str] = field(default_factory=list)
    lps: list[TokenLogprob] = field(default_factory=list)
    done: Done | None = None
    held: bool | None = None  # tools offered: None until the first visible character


@dataclass
class Shape:
    """Response shapes of one request.

    Attributes
    ----------
    chat : chat completion (else text completion).
    model : served model name.
    n : choices.
    token_text : bytes of a token id (for logprobs).
    tools : offered tools (a leading ``{`` makes the answer a call).
    logprobs : whether choices carry log-probabilities.
    """

    chat: bool
    model: str
    n: int
    token_text: TokenText
    tools: Sequence[Tool] = ()
    logprobs: bool = False
    rid: str = ""
    created: int = 0

    def __post_init__(self) -> None:
        self.rid = f"{'chatcmpl' if self.chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    @property
    def obj(self) -> str:
        return "chat.completion" if self.chat else "text_completion"

    def _base(self, obj: str) -> dict[str, Any]:
        return {"id": self.rid, "object": obj, "created": self.created, "model": self.model}

    def _lp(self, lps: Sequence[TokenLogprob]) -> dict[str, Any] | None:
        if not self.logprobs:
            return None
        if self.chat:
            return {"content": [self._chat_lp(lp) for lp in lps], "refusal": None}
        text = [self.token_text(lp.token).decode("utf-8", "replace") for lp in lps]
        offsets, at = [], 0
        for t in text:
            offsets.append(at)
            at += len(t)
        top = [{self.token_text(t).decode("utf-8", "replace"): v for t, v in lp.top} for lp in lps]
        return {
            "tokens": text,
            "token_logprobs": [lp.logprob for lp in lps],
            "top_logprobs": top,
            "text_offset": offsets,
        }

    def _chat_lp(self, lp: TokenLogprob) -> dict[str, Any]:
        def one(token: int, value: float) -> dict[str, Any]:
            raw = self.token_text(token)
            return {"token": raw.decode("utf-8", "replace"), "logprob": value, "bytes": list(raw)}

        return one(lp.token, lp.logprob) | {"top_logprobs": [one(t, v) for t, v in lp.top]}

    def _message(self, text: str) -> tuple[dict[str, Any], ToolCall | None]:
        call = parse_call(text, self.tools) if self.tools else None
        if call is None:
            return {"role": "assistant", "content": text}, None
        fn = {"name": call.name, "arguments": call.arguments}
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call.id, "type": "function", "function": fn}],
        }, call

    def whole(self, choices: dict[int, _Choice]) -> dict[str, Any]:
        """The non-streamed response."""
        out = []
        for i in range(self.n):
            c = choices[i]
            assert c.done is not None
            text = "".join(c.texts)
            row: dict[str, Any] = {"index": i, "logprobs": self._lp(c.lps)}
            if self.chat:
                message, call = self._message(text)
                row |= {"message": message, "finish_reason": finish(c.done.finish_reason, call)}
            else:
                row |= {"text": text, "finish_reason": finish(c.done.finish_reason)}
            out.append(row)
        dones = [choices[i].done for i in range(self.n)]
        return self._base(self.obj) | {"choices": out, "usage": usage(dones)}  # type: ignore[arg-type]

    async def collect(self, events: asyncio.Queue[Indexed]) -> dict[int, _Choice]:
        """Every choice's text, log-probabilities and end (raises a choice's error)."""
        choices = {i: _Choice() for i in range(self.n)}
        while any(c.done is None for c in choices.values()):
            i, event = await events.get()
            self._add(choices[i], event)
        return choices

    def _add(self, c: _Choice, event: Event) -> None:
        if isinstance(event, Piece):
            c.texts.append(event.text)
            c.lps.extend(event.logprobs)
        elif isinstance(event, Failed):
            raise event.error
        else:
            c.done = event

    async def stream(
        self, events: asyncio.Queue[Indexed], include_usage: bool
    ) -> AsyncIterator[str]:
        """SSE lines of the streamed response, ending with ``data: [DONE]``."""
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        choices = {i: _Choice() for i in range(self.n)}

        def data(payload: dict[str, Any]) -> str:
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

        def chunk(i: int, delta: dict[str, Any] | str, fin: str | None, lps: Any = None) -> str:
            row: dict[str, Any] = {"index": i, "logprobs": lps, "finish_reason": fin}
            row |= {"delta": delta} if self.chat else {"text": delta}
            return data(self._base(obj) | {"choices": [row]})

        if self.chat:
            for i in range(self.n):
                yield chunk(i, {"role": "assistant", "content": ""}, None)
        while any(c.done is None for c in choices.values()):
            # pieces that piled up while this loop was busy go out as one event each
            batch = [await events.get()]
            while not events.empty():
                batch.append(events.get_nowait())
            touched: dict[int, None] = {}
            for i, event in batch:
                c = choices[i]
                if isinstance(event, Failed):
                    e: InferenceError = event.error
                    yield data(error_body(e.http_status, str(e), e.code))
                    return
                touched[i] = None
                if isinstance(event, Piece):
                    c.texts.append(event.text)
                    c.lps.extend(event.logprobs)
                    if c.held is None and self.tools and "".join(c.texts).strip():
                        c.held = "".join(c.texts).lstrip().startswith("{")
                else:
                    c.done = event
            for i in touched:
                c = choices[i]
                if c.done is not None:
                    for line in self._tail(i, c, chunk):
                        yield line
                elif not (c.held or (self.tools and c.held is None)) and c.texts:
                    text = "".join(c.texts)
                    c.texts.clear()
                    lps, c.lps = self._lp(c.lps), []
                    yield chunk(i, {"content": text} if self.chat else text, None, lps)
        if include_usage:
            dones = [choices[i].done for i in range(self.n)]
            yield data(self._base(obj) | {"choices": [], "usage": usage(dones)})  # type: ignore[arg-type]
        yield "data: [DONE]\n\n"

    def _tail(self, i: int, c: _Choice, chunk: Callable[..., str]) -> list[str]:
        """The chunks that end choice ``i``: held text or a tool call, then the finish."""
        assert c.done is not None
        lines, call, text = [], None, "".join(c.texts)
        if self.chat and self.tools:
            call = parse_call(text, self.tools)
        if call is not None:
            head = {"index": 0, "id": call.id, "type": "function"}
            head |= {"function": {"name": call.name, "arguments": ""}}
            lines.append(chunk(i, {"tool_calls": [head]}, None))
            args = {"index": 0, "function": {"arguments": call.arguments}}
            lines.append(chunk(i, {"tool_calls": [args]}, None))
        elif text or c.lps:
            lps = self._lp(c.lps)
            lines.append(chunk(i, {"content": text} if self.chat else text, None, lps))
        end: dict[str, Any] | str = {} if self.chat else ""
        lines.append(chunk(i, end, finish(c.done.finish_reason, call)))
        return lines
