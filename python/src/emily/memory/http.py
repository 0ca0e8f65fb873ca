"""Memory over HTTP, for programs that do not speak Zenoh.

Routes (``/v1/*`` take ``Authorization: Bearer <token>`` when ``[memory]
api_key_file`` is set; ``/healthz``, ``/openapi.json`` and ``/docs`` stay open):

- ``POST /v1/memories``: store (a :class:`StoreRequest`; each episode names its user).
- ``POST /v1/memories/search``: recall (a :class:`RecallRequest`, scoped by ``user``).
- ``DELETE /v1/memories/{id}?user=``: forget one episode (404 when the user has none).
- ``POST /v1/memories/forget``: forget by ids or by a text ``match`` (a ForgetRequest).
- ``PATCH /v1/memories/{id}``: correct its text (``{"text": ..., "user": ...}``).
- ``GET /v1/memories/export?user=&after=&limit=&facts=``: one page of a user's memory.
- ``GET /v1/facts?user=&text=&subject=&relation=&history=&k=``: a user's facts.
- ``GET /v1/stats``: tier sizes, hit rates, pool and index settings.

Bodies are the bus's own messages, decoded by :func:`emily.bus.messages.decode`, and
each route calls the same code the bus queryables call
(:class:`~emily.memory.service.MemoryService`'s handlers),
so HTTP and Zenoh cannot drift apart. Every error has one envelope:
``{"error": {"message", "type", "code", "param"}}`` (as the inference API's).
"""

from __future__ import annotations

import html
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from emily.bus.messages import Message, decode
from emily.bus.rpc import RequestFailed
from emily.bus.schemas.context import StorableStr
from emily.bus.schemas.dialogue import DEFAULT_USER, ScopeName
from emily.bus.schemas.facts import FactsReply, FactsRequest
from emily.bus.schemas.lifecycle import (
    MAX_PAGE,
    CorrectReply,
    CorrectRequest,
    ExportReply,
    ExportRequest,
    ForgetReply,
    ForgetRequest,
)
from emily.bus.schemas.memory import (
    MAX_TEXT_CHARS,
    RecallReply,
    RecallRequest,
    StatsReply,
    StatsRequest,
    StoreReply,
    StoreRequest,
)
from emily.errors import ConfigError, PayloadError
from emily.memory import lifecycle
from emily.memory.config import MemoryConfig
from emily.memory.errors import StoreUnavailable
from emily.memory.pgcopy import InvalidRecord
from emily.observe.http import HTTPLimits, HTTPServer, bearer_ok, read_token

if TYPE_CHECKING:
    from emily.memory.service import MemoryService

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)
R = TypeVar("R", bound=BaseModel)
_STATUS = {"bad_request": 400, "not_found": 404, "busy": 429, "unavailable": 503, "timeout": 504}
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}


class Correction(Message):
    """``PATCH /v1/memories/{id}``: the episode's new text, for ``user``."""

    text: StorableStr = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    user: ScopeName = DEFAULT_USER


def error(status: int, code: str, message: str, param: str | None = None) -> JSONResponse:
    """The one error envelope (see the module docstring)."""
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": message, "type": kind, "code": code, "param": param}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status, headers=headers)


class Failure(Exception):
    """An HTTP error to answer with :func:`error`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def _call(fn: Callable[[Any], R], req: Any) -> R:
    """``fn(req)`` on a worker thread, its failures turned into :class:`Failure`."""
    try:
        return await run_in_threadpool(fn, req)
    except RequestFailed as exc:
        status = _STATUS.get(exc.reply.code, 500)
        raise Failure(status, exc.reply.code, exc.reply.message) from exc
    except lifecycle.NotFound as exc:
        raise Failure(404, "not_found", str(exc)) from exc
    except StoreUnavailable as exc:
        raise Failure(503, "unavailable", str(exc)) from exc
    except InvalidRecord as exc:
        raise Failure(400, "bad_request", str(exc)) from exc


async def _body(request: Request, model: type[M]) -> M:
    try:
        return decode(model, await request.body())
    except PayloadError as exc:
        raise Failure(400, "bad_request", str(exc)) from exc


def _valid(model: type[M], **fields: Any) -> M:
    """``model`` from query parameters (``None``: the model's default)."""
    try:
        return decode(model, {k: v for k, v in fields.items() if v is not None})
    except PayloadError as exc:
        raise Failure(400, "bad_request", str(exc)) from exc


def _json(reply: BaseModel, status: int = 200) -> Response:
    return Response(reply.model_dump_json(), status, media_type="application/json")


def _schema(model: type[BaseModel], defs: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` for a JSON body of ``model``; its nested models go to ``defs``
    (the document's ``components/schemas``, where the ``$ref`` names point)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs.update(schema.pop("$defs", {}))
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _docs_page(doc: dict[str, Any]) -> str:
    """A plain HTML list of the operations in ``doc`` (nothing loaded from elsewhere)."""
    rows = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            rows.append(
                f"<li><code>{html.escape(method.upper())} {html.escape(path)}</code> "
                f"{html.escape(op.get('summary', ''))}</li>"
            )
    title = html.escape(doc["info"]["title"])
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"</head><body><h1>{title}</h1><p>The full schemas are in "
        f"<a href='openapi.json'>openapi.json</a>.</p><ul>{''.join(rows)}</ul></body></html>"
    )


def create_app(service: MemoryService, *, api_key: str | None) -> FastAPI:
    """The memory API over ``service``; ``api_key`` guards ``/v1/*`` (see the module doc)."""
    app = FastAPI(
        title="emily memory",
        summary="Store, recall, forget, correct and export a user's memories",
        version="1",
        docs_url=None,
        redoc_url=None,
    )

    defs: dict[str, Any] = {}

    @app.middleware("http")
    async def authorized(request: Request, call_next: Any) -> Response:
        if request.url.path.startswith("/v1/") and not bearer_ok(
            request.headers.get("authorization", ""), api_key
        ):
            message = "missing or wrong bearer token: send 'Authorization: Bearer <token>'"
            return error(401, "unauthorized", message)
        response: Response = await call_next(request)
        return response

    @app.exception_handler(Failure)
    async def _failed(_: Request, exc: Failure) -> JSONResponse:
        return error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _bad_params(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in exc.errors()
        ]
        return error(400, "bad_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, f"http_{exc.status_code}", str(exc.detail))

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(_docs_page(app.openapi()))

    @app.post(
        "/v1/memories",
        summary="Store episodes",
        response_model=StoreReply,
        openapi_extra=_schema(StoreRequest, defs),
    )
    async def store(request: Request) -> Response:
        req = await _body(request, StoreRequest)
        return _json(await _call(service.handle_store, req), 201)

    @app.post(
        "/v1/memories/search",
        summary="Recall the nearest episodes of a user",
        response_model=RecallReply,
        openapi_extra=_schema(RecallRequest, defs),
    )
    async def search(request: Request) -> Response:
        return _json(await _call(service.handle_recall, await _body(request, RecallRequest)))

    @app.post(
        "/v1/memories/forget",
        summary="Forget episodes by ids or by a text match",
        response_model=ForgetReply,
        openapi_extra=_schema(ForgetRequest, defs),
    )
    async def forget(request: Request) -> Response:
        req = await _body(request, ForgetRequest)
        return _json(await _call(service.handle_forget, req))

    @app.delete(
        "/v1/memories/{episode_id}", summary="Forget one episode", response_model=ForgetReply
    )
    async def delete(episode_id: uuid.UUID, user: str = Query(DEFAULT_USER)) -> Response:
        req = _valid(ForgetRequest, ids=[episode_id], user=user)
        reply = await _call(service.handle_forget, req)
        if not reply.forgotten:
            raise Failure(404, "not_found", f"user {user!r} has no episode {episode_id}")
        return _json(reply)

    @app.patch(
        "/v1/memories/{episode_id}",
        summary="Correct an episode's text",
        response_model=CorrectReply,
        openapi_extra=_schema(Correction, defs),
    )
    async def correct(episode_id: uuid.UUID, request: Request) -> Response:
        body = await _body(request, Correction)
        req = _valid(CorrectRequest, id=episode_id, text=body.text, user=body.user)
        return _json(await _call(service.handle_correct, req))

    @app.get("/v1/memories/export", summary="One page of a user's memory", response_model=None)
    async def export(
        user: str = Query(DEFAULT_USER),
        after: uuid.UUID | None = None,
        limit: int = Query(MAX_PAGE),
        facts: bool = True,
    ) -> Response:
        req = _valid(ExportRequest, user=user, after=after, limit=limit, facts=facts)
        reply: ExportReply = await _call(service.handle_export, req)
        return _json(reply)

    @app.get("/v1/facts", summary="A user's facts", response_model=FactsReply)
    async def facts_(
        user: str = Query(DEFAULT_USER),
        text: str | None = None,
        subject: str | None = None,
        relation: str | None = None,
        history: bool = False,
        k: int = 5,
    ) -> Response:
        req = _valid(
            FactsRequest,
            user=user,
            text=text,
            subject=subject,
            relation=relation,
            history=history,
            k=k,
        )
        return _json(await _call(service.handle_facts, req))

    @app.get("/v1/stats", summary="Tier sizes, hit rates and settings", response_model=StatsReply)
    async def stats() -> Response:
        return _json(await _call(service.handle_stats, StatsRequest()))

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = generate()
            known = doc.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in defs.items():
                known.setdefault(name, schema)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def start_http(service: MemoryService, cfg: MemoryConfig) -> HTTPServer | None:
    """Serve :func:`create_app` on ``cfg.http_addr:cfg.http_port`` (``None`` when the port
    is 0). A port that cannot be bound is logged and the bus goes on serving: memory's
    queryables are what the other services need."""
    if not cfg.http_port:
        return None
    if not 0 < cfg.http_port <= 65535 or cfg.http_max_body_bytes < 1:
        raise ConfigError("[memory] http_port must be 0..65535 and http_max_body_bytes > 0")
    app = create_app(service, api_key=read_token(cfg.api_key_file, "memory"))
    limits = HTTPLimits(max_body_bytes=cfg.http_max_body_bytes)
    server = HTTPServer(app, cfg.http_addr, cfg.http_port, name="memory-http", limits=limits)
    if not server.wait_started():
        log.error(
            "memory HTTP could not listen on %s:%d (is the port in use? set [memory] "
            "http_port, or 0 to turn it off); the bus keeps serving",
            cfg.http_addr,
            cfg.http_port,
        )
        server.close()
        return None
    return server
