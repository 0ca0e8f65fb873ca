"""The OpenAI-compatible HTTP API: ``/v1/{chat/completions,completions,models}``,
``/healthz`` and ``/metrics``, on FastAPI + uvicorn.

FastAPI is used on purpose: its pydantic bodies give per-field 400s for free, and
Starlette's streaming response cancels our generator when the client goes away, which is
how a disconnected client frees its queue slot. Every request is translated into the bus
request (see :mod:`emily.inference.openai_schemas`) and runs through the same scheduler
as Zenoh requests.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from emily.bus.schemas.inference import ChatRequest, FinishReason, GenerateRequest
from emily.inference.engine import Engine
from emily.inference.errors import Busy, InferenceError
from emily.inference.metrics import InferenceMetrics
from emily.inference.openai_schemas import ChatBody, CompletionBody
from emily.inference.scheduler import Done, Event, Failed, Job, Piece, Scheduler

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}
_TYPES |= {429: "rate_limit_error", 503: "server_error", 500: "server_error"}


class Unauthorized(InferenceError):
    """Missing or wrong bearer token."""

    code = "unauthorized"
    http_status = 401


def _error(status: int, message: str, code: str, param: str | None = None) -> dict[str, Any]:
    err = {"message": message, "type": _TYPES.get(status, "server_error"), "code": code}
    return {"error": err | {"param": param}}


def _describe(exc: ValidationError | RequestValidationError) -> tuple[str, str | None]:
    parts, first = [], None
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ()) if p != "body"]
        where = ".".join(loc) or "body"
        first = first or where
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request body", first


def _finish(reason: FinishReason) -> str:
    return "length" if reason == "timeout" else reason if reason != "cancelled" else "stop"


def _usage(done: Done) -> dict[str, int]:
    total = done.prompt_tokens + done.completion_tokens
    return {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": total,
    }


def create_app(
    engine: Engine, scheduler: Scheduler, metrics: InferenceMetrics, *, api_key: str | None
) -> FastAPI:
    """The ASGI app serving ``engine`` through ``scheduler``; ``api_key`` guards ``/v1/*``."""
    app = FastAPI(title="emily inference", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(RequestValidationError)
    async def _bad_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.rejections.labels("bad_request").inc()
        message, param = _describe(exc)
        return JSONResponse(_error(400, message, "bad_request", param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, message = f"http_{exc.status_code}", str(exc.detail)
        if exc.status_code == 400:  # a body that is not UTF-8 JSON
            metrics.rejections.labels("bad_request").inc()
            code, message = "bad_request", f"{message}: send a UTF-8 JSON object"
        body = _error(exc.status_code, message, code)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(ValidationError)
    async def _bad_request(_: Request, exc: ValidationError) -> JSONResponse:
        metrics.rejections.labels("bad_request").inc()
        message, param = _describe(exc)
        return JSONResponse(_error(400, message, "bad_request", param), status_code=400)

    @app.exception_handler(InferenceError)
    async def _refused(_: Request, exc: InferenceError) -> JSONResponse:
        headers = {}
        if isinstance(exc, Busy):
            headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
        elif exc.code in ("bad_request", "not_found"):
            metrics.rejections.labels(exc.code).inc()
        body = _error(exc.http_status, str(exc), exc.code)
        return JSONResponse(body, status_code=exc.http_status, headers=headers)

    async def authorized(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), api_key):
            raise Unauthorized(
                "missing or wrong bearer token: send 'Authorization: Bearer <token>'"
            )

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        b = engine.backend
        return {
            "status": "ok",
            "model": engine.name,
            "backend": b.backend,
            "device": b.device,
            "gpu_offload_supported": b.gpu_offload_supported,
            "queue_depth": scheduler.depth,
        }

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", dependencies=[Depends(authorized)])
    async def models() -> dict[str, Any]:
        created = int(engine.path.stat().st_mtime)
        card = {"id": engine.name, "object": "model", "created": created, "owned_by": "emily"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/completions", dependencies=[Depends(authorized)])
    async def completions(body: CompletionBody, request: Request) -> Response:
        req = body.to_bus()
        job, events = await _submit(engine, scheduler, req)
        shape = _Shape("cmpl", "text_completion", engine.name, chat=False)
        if req.stream:
            return _sse(shape.stream(events, body.include_usage), scheduler, job)
        return await shape.whole(events, request, scheduler, job)

    @app.post("/v1/chat/completions", dependencies=[Depends(authorized)])
    async def chat(body: ChatBody, request: Request) -> Response:
        req = body.to_bus()
        job, events = await _submit(engine, scheduler, req)
        shape = _Shape("chatcmpl", "chat.completion", engine.name, chat=True)
        if req.stream:
            return _sse(shape.stream(events, body.include_usage), scheduler, job)
        return await shape.whole(events, request, scheduler, job)

    return app


async def _submit(
    engine: Engine, scheduler: Scheduler, req: GenerateRequest | ChatRequest
) -> tuple[Job, asyncio.Queue[Event]]:
    engine.check_model(req.model)

    def plan() -> Any:
        if isinstance(req, ChatRequest):
            prompt = engine.chat_prompt(req.messages)
            return engine.plan(prompt.text, req, extra_stop=prompt.stop)
        return engine.plan(req.prompt, req)

    ready = await asyncio.to_thread(plan)  # tokenising a long prompt must not block the loop
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[Event] = asyncio.Queue()

    def sink(event: Event) -> None:
        loop.call_soon_threadsafe(events.put_nowait, event)

    return scheduler.submit(ready, sink, api="http"), events


@dataclass(frozen=True)
class _Shape:
    """OpenAI response shapes of one endpoint."""

    prefix: str
    obj: str
    model: str
    chat: bool

    def _base(self, rid: str, created: int, obj: str) -> dict[str, Any]:
        return {"id": rid, "object": obj, "created": created, "model": self.model}

    def _choice(self, text: str | None, finish: str | None, *, delta: bool) -> dict[str, Any]:
        if not self.chat:
            return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        if delta:
            body = {} if text is None else {"content": text}
            return {"index": 0, "delta": body, "logprobs": None, "finish_reason": finish}
        message = {"role": "assistant", "content": text}
        return {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}

    async def stream(self, events: asyncio.Queue[Event], include_usage: bool) -> AsyncIterator[str]:
        rid, created = f"{self.prefix}-{uuid.uuid4().hex}", int(time.time())
        obj = f"{self.obj}.chunk" if self.chat else self.obj

        def data(payload: dict[str, Any]) -> str:
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

        if self.chat:
            first = self._choice(None, None, delta=True) | {"delta": {"role": "assistant"}}
            yield data(self._base(rid, created, obj) | {"choices": [first]})
        while True:
            event = await events.get()
            if isinstance(event, Piece):
                # pieces that piled up while this loop was busy go out as one event
                texts = [event.text]
                while isinstance(event, Piece) and not events.empty():
                    event = events.get_nowait()
                    if isinstance(event, Piece):
                        texts.append(event.text)
                choice = self._choice("".join(texts), None, delta=True)
                yield data(self._base(rid, created, obj) | {"choices": [choice]})
                if isinstance(event, Piece):
                    continue
            if isinstance(event, Failed):
                e = event.error
                yield data(_error(e.http_status, str(e), e.code))
                return
            else:
                choice = self._choice(
                    None if self.chat else "", _finish(event.finish_reason), delta=True
                )
                yield data(self._base(rid, created, obj) | {"choices": [choice]})
                if include_usage:
                    yield data(
                        self._base(rid, created, obj) | {"choices": [], "usage": _usage(event)}
                    )
                yield "data: [DONE]\n\n"
                return

    async def whole(
        self, events: asyncio.Queue[Event], request: Request, scheduler: Scheduler, job: Job
    ) -> Response:
        texts: list[str] = []
        while True:
            try:
                event = await asyncio.wait_for(events.get(), timeout=0.5)
            except TimeoutError:
                if await request.is_disconnected():  # nobody is waiting: free the slot
                    scheduler.cancel(job.id)
                    return Response(status_code=499)
                continue
            if isinstance(event, Piece):
                texts.append(event.text)
            elif isinstance(event, Failed):
                raise event.error
            else:
                rid = f"{self.prefix}-{uuid.uuid4().hex}"
                choice = self._choice("".join(texts), _finish(event.finish_reason), delta=False)
                body = self._base(rid, int(time.time()), self.obj)
                return JSONResponse(body | {"choices": [choice], "usage": _usage(event)})


def _sse(chunks: AsyncIterator[str], scheduler: Scheduler, job: Job) -> StreamingResponse:
    async def guarded() -> AsyncIterator[str]:
        finished = False
        try:
            async for chunk in chunks:
                yield chunk
            finished = True
        finally:
            if not finished:  # the client went away mid-stream: free the slot
                scheduler.cancel(job.id)

    return StreamingResponse(guarded(), media_type="text/event-stream")
