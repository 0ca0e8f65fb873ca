"""Serving a service's HTTP app (FastAPI on uvicorn) from a background thread.

The inference API and cognition's ``/v1/observe`` both run this way, beside their Zenoh
queryables in the same process.

uvicorn bounds neither the connections it holds nor how long a client may take to send
its request: thousands of idle or half-sent connections would use up the process's file
descriptors before any request is read, let alone authenticated. :class:`HTTPLimits`
closes that gap: connections beyond ``max_connections`` are closed as they arrive, a
connection that has not sent its request headers within ``header_timeout_s`` (from its
opening, or from its last response) is closed, and so is one still sending its body
after ``body_timeout_s``. A body over ``max_body_bytes`` gets 413 without being read.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from emily.errors import ConfigError

log = logging.getLogger(__name__)


def read_token(path: Path | None, section: str) -> str | None:
    """The bearer token in ``path`` (stripped), or ``None`` when no file is configured.

    Raises
    ------
    ConfigError
        When the file cannot be read or is empty; ``section`` names the setting.
    """
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"[{section}] api_key_file {path} cannot be read: {exc}") from exc
    if not token:
        raise ConfigError(f"[{section}] api_key_file {path} is empty; put the token in it")
    return token


def bearer_ok(authorization: str, token: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (always, with no token set)."""
    if token is None:
        return True
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


@dataclass(frozen=True)
class HTTPLimits:
    """Bounds on what one HTTP server holds.

    Attributes
    ----------
    max_connections : open connections at once; more are closed on arrival.
    header_timeout_s : time a connection gets to send a request's headers (s).
    body_timeout_s : time from a request's start to the end of its body (s).
    max_body_bytes : largest request body (bytes); larger ones get 413.
    """

    max_connections: int = 256
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_body_bytes: int = 8 << 20


def guarded_protocol(limits: HTTPLimits) -> type[H11Protocol]:
    """An h11 protocol class for uvicorn that enforces ``limits`` (see the module doc)."""

    class Guarded(H11Protocol):
        _since = 0.0
        _watch: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                log.warning(
                    "HTTP: %d connections open, the limit is %d: closing a new one",
                    len(self.connections),
                    limits.max_connections,
                )
                transport.close()
                return
            self._since = self.loop.time()
            self._arm()

        def _arm(self) -> None:
            step = min(limits.header_timeout_s, limits.body_timeout_s) / 4
            self._watch = self.loop.call_later(max(step, 0.05), self._check)

        def _check(self) -> None:
            if self.transport.is_closing():
                return
            waited = self.loop.time() - self._since
            state = self.conn.their_state
            late = (state is h11.IDLE and waited > limits.header_timeout_s) or (
                state is h11.SEND_BODY and waited > limits.body_timeout_s
            )
            if late and self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                self.transport.close()
                return
            self._arm()

        def on_response_complete(self) -> None:
            self._since = self.loop.time()
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._watch is not None:
                self._watch.cancel()
            super().connection_lost(exc)

    return Guarded


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413, unread.

    The declared ``Content-Length`` is checked first; a chunked body is counted as it
    arrives, and once it passes the limit the app sees the client disconnect while the
    client gets 413.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send)
                return
        seen, over, started = 0, False, False

        async def counted() -> dict[str, Any]:
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True  # the app sees the client go away; the client gets 413
                    return {"type": "http.disconnect"}
            return message

        async def watched(message: dict[str, Any]) -> None:
            nonlocal started
            if over and not started:
                return  # the app's answer to a body it never got whole: 413 instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except Exception:
            if not over:
                raise
        if over and not started:
            await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps(
            {
                "error": {
                    "message": f"request body is over the {self.max_bytes:,}-byte limit",
                    "type": "invalid_request_error",
                    "code": "payload_too_large",
                }
            }
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class HTTPServer:
    """uvicorn serving ``app`` on a background thread until :meth:`close`.

    ``name`` names the thread (``inference-http``), for stack dumps and profilers;
    ``limits`` bounds connections, slow clients and bodies (:class:`HTTPLimits`).
    """

    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        *,
        name: str = "http",
        limits: HTTPLimits = HTTPLimits(),
    ) -> None:
        config = uvicorn.Config(
            BodyLimit(app, limits.max_body_bytes),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            http=guarded_protocol(limits),
            limit_concurrency=limits.max_connections,
        )
        self._server = uvicorn.Server(config)
        self.url = f"http://{host}:{port}"
        self.error: BaseException | None = None  # why the thread stopped, if it did
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._server.run()
        except BaseException as exc:  # uvicorn exits the thread (SystemExit) on a bind error
            self.error = exc
            log.error("HTTP server on %s stopped: %r", self.url, exc)

    def wait_started(self, timeout_s: float = 30.0) -> bool:
        """Block until uvicorn accepts connections (True) or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        """Stop accepting, finish open responses, join the thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
