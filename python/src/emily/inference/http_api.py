"""The OpenAI-compatible HTTP API: ``/v1/{chat/completions,completions,embeddings,models}``
and ``/v1/audio/transcriptions`` (through perception, :mod:`emily.inference.transcriptions`),
``/health`` (llama.cpp's server's name) and ``/healthz``, ``/metrics``, and its OpenAPI
document (``/openapi.json``) with a docs page (``/docs``) that loads nothing from a CDN.

FastAPI is used on purpose: its pydantic bodies give per-field 400s for free, and
Starlette's streaming response cancels our generator when the client goes away, which is
how a disconnected client frees its slot; a non-streamed request polls for the
disconnect instead. Every request is translated into the bus request (see
:mod:`emily.inference.openai_schemas`) and runs through the same scheduler as Zenoh
requests. Every error has one shape (:func:`~emily.inference.openai_shapes.error_body`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from emily.bus.schemas.inference import ChatRequest, GenerateRequest
from emily.inference.embeddings import MODEL as EMBED_MODEL
from emily.inference.embeddings import EmbeddingBody, Embeddings
from emily.inference.engine import Engine, Extras, Plan
from emily.inference.errors import Busy, InferenceError
from emily.inference.metrics import InferenceMetrics
from emily.inference.openai_schemas import ChatBody, CompletionBody
from emily.inference.openai_shapes import Indexed, Shape, error_body
from emily.inference.scheduler import Event, Job, Scheduler
from emily.inference.structured import tool_prompt
from emily.inference.transcriptions import PerceptionClient, add_transcriptions
from emily.observe.http import bearer_ok

log = logging.getLogger(__name__)
IGNORED_HEADER = "x-emily-ignored-fields"


class Unauthorized(InferenceError):
    """Missing or wrong bearer token."""

    code = "unauthorized"
    http_status = 401


def _describe(exc: ValidationError | RequestValidationError) -> tuple[str, str | None]:
    parts, first = [], None
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ()) if p != "body"]
        where = ".".join(loc) or "body"
        first = first or where
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        if e.get("type") == "extra_forbidden":
            msg = "unknown field: the OpenAI API has no such field here (see /docs)"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts) or "invalid request body", first


def create_app(
    engine: Engine,
    scheduler: Scheduler,
    metrics: InferenceMetrics,
    *,
    api_key: str | None,
    perception: PerceptionClient | None = None,
) -> FastAPI:
    """The ASGI app serving ``engine`` through ``scheduler``; ``api_key`` guards ``/v1/*``;
    ``perception`` answers ``/v1/audio/transcriptions`` (503 without it)."""
    app = FastAPI(
        title="emily inference",
        summary="OpenAI-compatible chat and text completions on llama.cpp",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )

    def bad(exc: ValidationError | RequestValidationError) -> JSONResponse:
        metrics.rejections.labels("bad_request").inc()
        message, param = _describe(exc)
        return JSONResponse(error_body(400, message, "bad_request", param), status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _bad_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        return bad(exc)

    @app.exception_handler(ValidationError)
    async def _bad_request(_: Request, exc: ValidationError) -> JSONResponse:
        return bad(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, message = f"http_{exc.status_code}", str(exc.detail)
        if exc.status_code == 400:  # a body that is not UTF-8 JSON
            metrics.rejections.labels("bad_request").inc()
            code, message = "bad_request", f"{message}: send a UTF-8 JSON object"
        body = error_body(exc.status_code, message, code)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(InferenceError)
    async def _refused(_: Request, exc: InferenceError) -> JSONResponse:
        headers = {}
        if isinstance(exc, Busy):
            headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
        elif exc.code in ("bad_request", "not_found"):
            metrics.rejections.labels(exc.code).inc()
        body = error_body(exc.http_status, str(exc), exc.code)
        return JSONResponse(body, status_code=exc.http_status, headers=headers)

    async def authorized(request: Request) -> None:
        if not bearer_ok(request.headers.get("authorization", ""), api_key):
            raise Unauthorized(
                "missing or wrong bearer token: send 'Authorization: Bearer <token>'"
            )

    @app.get("/healthz", summary="Liveness, model and backend")
    async def healthz() -> dict[str, Any]:
        b = engine.backend
        return {
            "status": "ok",
            "model": engine.name,
            "backend": b.backend,
            "device": b.device,
            "gpu_offload_supported": b.gpu_offload_supported,
            "queue_depth": scheduler.depth,
            "slots": scheduler.config.slots,
        }

    @app.get("/health", summary="Liveness in llama.cpp server's shape")
    async def health() -> dict[str, Any]:
        running = scheduler.running
        return {
            "status": "ok",
            "slots_idle": scheduler.config.slots - running,
            "slots_processing": running,
        }

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        page = resources.files("emily.inference").joinpath("data/docs.html").read_text("utf-8")
        return HTMLResponse(page)

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", dependencies=[Depends(authorized)], summary="The served models")
    async def models() -> dict[str, Any]:
        created = int(engine.path.stat().st_mtime)
        card = {"id": engine.name, "object": "model", "created": created, "owned_by": "emily"}
        embed = {"id": EMBED_MODEL, "object": "model", "created": created, "owned_by": "emily"}
        return {"object": "list", "data": [card, embed]}

    embeddings = Embeddings()

    @app.post(
        "/v1/embeddings",
        dependencies=[Depends(authorized)],
        summary="Sentence embeddings (MiniLM-L6, 384 dimensions, unit length)",
    )
    async def embed(body: EmbeddingBody) -> dict[str, Any]:
        return await embeddings.respond(body)

    def headers_for(body: CompletionBody | ChatBody) -> dict[str, str]:
        ignored = body.ignored()
        if not ignored:
            return {}
        log.info("accepted and ignored request fields: %s", ", ".join(ignored))
        return {IGNORED_HEADER: ", ".join(ignored)}

    async def respond(
        shape: Shape,
        jobs: list[Job],
        events: asyncio.Queue[Indexed],
        request: Request,
        stream: bool,
        include_usage: bool,
        headers: dict[str, str],
    ) -> Response:
        if stream:
            return _sse(shape.stream(events, include_usage), scheduler, jobs, headers)
        collecting = asyncio.ensure_future(shape.collect(events))
        while True:
            finished, _ = await asyncio.wait({collecting}, timeout=0.5)
            if finished:
                return JSONResponse(shape.whole(collecting.result()), headers=headers)
            if await request.is_disconnected():  # nobody is waiting: free the slots
                for job in jobs:
                    scheduler.cancel(job.id)
                collecting.cancel()
                return Response(status_code=499)

    @app.post("/v1/completions", dependencies=[Depends(authorized)], summary="Text completion")
    async def completions(body: CompletionBody, request: Request) -> Response:
        req = body.to_bus()
        extras = body.extras(None, body.logprobs)
        jobs, events = await _submit(engine, scheduler, req, extras, body.n)
        shape = Shape(False, engine.name, body.n, engine.piece, logprobs=body.logprobs is not None)
        return await respond(
            shape, jobs, events, request, req.stream, body.include_usage, headers_for(body)
        )

    @app.post(
        "/v1/chat/completions",
        dependencies=[Depends(authorized)],
        summary="Chat completion, with tools and structured output",
    )
    async def chat(body: ChatBody, request: Request) -> Response:
        tools = body.tool_list() if body.choice() != "none" else []
        req = body.to_bus(tool_prompt(tools, body.choice()) if tools else None)
        extras = body.extras(body.grammar(), body.n_logprobs())
        jobs, events = await _submit(engine, scheduler, req, extras, body.n)
        shape = Shape(True, engine.name, body.n, engine.piece, tools, body.logprobs or False)
        return await respond(
            shape, jobs, events, request, req.stream, body.include_usage, headers_for(body)
        )

    add_transcriptions(app, perception, authorized)
    return app


async def _submit(
    engine: Engine,
    scheduler: Scheduler,
    req: GenerateRequest | ChatRequest,
    extras: Extras,
    n: int,
) -> tuple[list[Job], asyncio.Queue[Indexed]]:
    engine.check_model(req.model)

    def plan() -> Plan:
        if isinstance(req, ChatRequest):
            return engine.plan(engine.chat_prompt(req.messages), req, extras=extras)
        return engine.plan(req.prompt, req, extras=extras)

    ready = await asyncio.to_thread(plan)  # tokenising a long prompt must not block the loop
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[Indexed] = asyncio.Queue()
    jobs: list[Job] = []

    def sink_for(i: int) -> Any:
        def sink(event: Event) -> None:
            loop.call_soon_threadsafe(events.put_nowait, (i, event))

        return sink

    try:
        for i in range(n):
            seed = None if ready.seed is None else (ready.seed + i) % 2**32
            jobs.append(
                scheduler.submit(dataclasses.replace(ready, seed=seed), sink_for(i), api="http")
            )
    except InferenceError:
        for job in jobs:  # all choices or none
            scheduler.cancel(job.id)
        raise
    return jobs, events


def _sse(
    chunks: AsyncIterator[str], scheduler: Scheduler, jobs: list[Job], headers: dict[str, str]
) -> StreamingResponse:
    async def guarded() -> AsyncIterator[str]:
        finished = False
        try:
            async for chunk in chunks:
                yield chunk
            finished = True
        finally:
            if not finished:  # the client went away mid-stream: free the slots
                for job in jobs:
                    scheduler.cancel(job.id)

    return StreamingResponse(guarded(), media_type="text/event-stream", headers=headers)
