"""HTTP for non-Zenoh clients: ``POST /v1/observe``, ``GET /metrics``, ``GET /healthz``.

``/v1/observe`` takes the bus's :class:`~emily.bus.schemas.cognition.ObserveRequest` as
JSON: ``{"text": ...}``, or ``{"audio": <base64>}`` / ``{"image": <base64>}`` for a
clip or a picture. Media that perception refuses is a 400, a missing perception
service a 503; either way nothing is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool

from emily.bus.messages import decode
from emily.bus.rpc import RequestFailed
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from emily.errors import PayloadError
from emily.observe.http import bearer_ok

# error reply code -> HTTP status
_STATUS = {"bad_request": 400, "busy": 429, "unavailable": 503, "timeout": 504, "not_found": 404}


def build_app(
    observe: Callable[[ObserveRequest], ObserveReply],
    registry: CollectorRegistry,
    on_bad: Callable[[], None] | None = None,
    api_key: str | None = None,
) -> FastAPI:
    """The FastAPI app; ``observe`` runs one cycle (in FastAPI's thread pool).

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
                "content": {"application/json": {"schema": ObserveRequest.model_json_schema()}},
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
        body = await request.body()
        try:
            req = decode(ObserveRequest, body)
        except PayloadError as exc:
            if on_bad is not None:
                on_bad()
            return JSONResponse({"error": {"code": "bad_request", "message": str(exc)}}, 400)
        try:
            reply = await run_in_threadpool(observe, req)
        except RequestFailed as exc:
            status = _STATUS.get(exc.reply.code, 500)
            if status == 400 and on_bad is not None:
                on_bad()
            error = {"code": exc.reply.code, "message": exc.reply.message}
            return JSONResponse({"error": error}, status)
        return Response(reply.model_dump_json(), media_type="application/json")

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    return app
