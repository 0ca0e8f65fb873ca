"""HTTP for non-Zenoh clients: ``POST /v1/observe``, ``GET /metrics``, ``GET /healthz``.

``/v1/observe`` takes the bus's :class:`~emily.bus.schemas.cognition.ObserveRequest` as
JSON: ``{"text": ...}``, or ``{"audio": <base64>}`` / ``{"image": <base64>}`` for a
clip or a picture. It also takes the same fields as a ``multipart/form-data`` form,
with the clip or picture as a file part named ``audio`` or ``image`` (``curl -F
image=@note.png``); ``context`` is then a JSON object in a text field. Media that
perception refuses is a 400, a missing perception service a 503; either way nothing is
stored.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from emily.bus.messages import decode
from emily.bus.rpc import RequestFailed
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from emily.errors import PayloadError
from emily.observe.http import bearer_ok

#: form fields whose text is JSON (a bool, a number or an object), not a plain string
_JSON_FIELDS = ("allow_llm", "max_tokens", "context")
_FILE_FIELDS = ("audio", "image")


def _form_body(form: FormData) -> bytes:
    """The JSON body equivalent to a multipart ``/v1/observe`` form (see the module
    docstring); :class:`PayloadError` names a field that cannot be read."""
    fields: dict[str, object] = {}
    for name, value in form.multi_items():
        if name in fields:
            raise PayloadError(f"{name}: given more than once")
        if isinstance(value, UploadFile):
            if name not in _FILE_FIELDS:
                raise PayloadError(f"{name}: only audio and image may be files")
            raw = value.file.read()
            fields[name] = base64.b64encode(raw).decode("ascii")
        elif name in _FILE_FIELDS:
            raise PayloadError(f"{name}: must be a file part (curl -F {name}=@FILE)")
        elif name in _JSON_FIELDS:
            try:
                fields[name] = json.loads(value)
            except ValueError:
                raise PayloadError(f"{name}: {value[:40]!r} is not JSON") from None
        else:
            fields[name] = value
    return json.dumps(fields).encode()


def _form_schema() -> dict[str, Any]:
    """The multipart form's OpenAPI schema: the JSON body's fields, media as files."""
    schema = ObserveRequest.model_json_schema()
    props = dict(schema.get("properties", {}))
    for name in _FILE_FIELDS:
        props[name] = {"type": "string", "format": "binary"}
    props["context"] = {"type": "string", "description": "a JSON object"}
    return {"type": "object", "properties": props}


# error reply code -> HTTP status
_STATUS = {"bad_request": 400, "busy": 429, "unavailable": 503, "timeout": 504, "not_found": 404}


def build_app(
    answer: Callable[[ObserveRequest], tuple[ObserveReply, Callable[[], None]]],
    registry: CollectorRegistry,
    on_bad: Callable[[], None] | None = None,
    api_key: str | None = None,
) -> FastAPI:
    """The FastAPI app; ``answer`` runs one cycle up to its reply (in FastAPI's thread
    pool) and returns it with the cycle's deferred work, which runs once the response is
    sent (a background task), so delivering its episodes to a memory that is behind
    never delays the reply.

    With ``api_key``, every ``/v1/*`` request must carry ``Authorization: Bearer <key>``
    (401 otherwise); ``/metrics`` and ``/healthz`` stay open for monitoring.
    """
    app = FastAPI(title="Emily cognition", version="1")

    @app.middleware("http")
    async def authorized(request: Request, call_next: Any) -> Response:
        if request.url.path.startswith("/v1/") and not bearer_ok(
            request.headers.get("authorization", ""), api_key
        ):
            message = "missing or wrong bearer token: send 'Authorization: Bearer <token>'"
            error = {"code": "unauthorized", "message": message}
            return JSONResponse({"error": error}, 401, headers={"WWW-Authenticate": "Bearer"})
        response: Response = await call_next(request)
        return response

    @app.post(
        "/v1/observe",
        summary="Observe: run one cognitive cycle",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": ObserveRequest.model_json_schema()},
                    "multipart/form-data": {"schema": _form_schema()},
                },
            }
        },
        responses={
            200: {"model": ObserveReply, "description": "the action, response and trace"},
            400: {"description": "the observation is malformed; the message says why"},
            413: {"description": "the body is over the configured size limit"},
            503: {"description": "a service the observation needs is absent"},
        },
    )
    async def post_observe(request: Request) -> Response:
        try:
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                try:
                    form = await request.form(max_files=2, max_fields=32)
                except Exception as exc:  # python-multipart's parse errors vary by version
                    raise PayloadError(f"the multipart form cannot be read: {exc}") from exc
                body = _form_body(form)
            else:
                body = await request.body()
            req = decode(ObserveRequest, body)
        except PayloadError as exc:
            if on_bad is not None:
                on_bad()
            return JSONResponse({"error": {"code": "bad_request", "message": str(exc)}}, 400)
        try:
            reply, after = await run_in_threadpool(answer, req)
        except RequestFailed as exc:
            status = _STATUS.get(exc.reply.code, 500)
            if status == 400 and on_bad is not None:
                on_bad()
            error = {"code": exc.reply.code, "message": exc.reply.message}
            return JSONResponse({"error": error}, status)
        return Response(
            reply.model_dump_json(), media_type="application/json", background=BackgroundTask(after)
        )

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    return app
