"""HTTP for non-Zenoh clients: ``POST /v1/observe``, ``GET /metrics``, ``GET /healthz``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool

from emily.bus.messages import decode
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from emily.errors import PayloadError


def build_app(
    observe: Callable[[ObserveRequest], ObserveReply],
    registry: CollectorRegistry,
    on_bad: Callable[[], None] | None = None,
) -> FastAPI:
    """The FastAPI app; ``observe`` runs one cycle (in FastAPI's thread pool)."""
    app = FastAPI(title="Emily cognition", version="1")

    @app.post("/v1/observe")
    async def post_observe(request: Request) -> Response:
        body = await request.body()
        try:
            req = decode(ObserveRequest, body)
        except PayloadError as exc:
            if on_bad is not None:
                on_bad()
            return JSONResponse({"error": {"code": "bad_request", "message": str(exc)}}, 400)
        reply = await run_in_threadpool(observe, req)
        return Response(reply.model_dump_json(), media_type="application/json")

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    return app
