"""``emily mcp``: Emily's memory and cognition as Model Context Protocol tools.

Tools (each one bus call; a refused request comes back as a tool error whose text says
why, so the calling model can correct itself):

- ``remember(text, user, session, role, act)``: store an episode (``memory/store``).
- ``recall(query, k, user, search)``: the nearest episodes of ``user`` (``memory/recall``).
- ``forget(ids | match, user, dry_run)``: forget episodes everywhere (``memory/forget``).
- ``observe(text, user, session, allow_llm)``: one cognitive cycle (``cognition/observe``).

Transports: ``stdio`` (the default: an MCP client starts ``emily mcp`` as a subprocess)
and ``http`` (streamable HTTP at ``http://HOST:PORT/mcp``; with ``--api-key-file``
every request must carry ``Authorization: Bearer <token>``). Built on the ``mcp``
Python SDK's 1.x :class:`~mcp.server.fastmcp.FastMCP` (the series nixpkgs packages).
FastMCP would run a synchronous tool on its event loop, so each tool is a coroutine that
makes its bus call on a worker thread: a slow cycle never blocks the protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Literal

import anyio.to_thread
import zenoh
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from pydantic import ValidationError

from emily.bus import Keys
from emily.bus.endpoints import FORGET, OBSERVE, RECALL, STORE, Endpoint
from emily.bus.messages import Message
from emily.bus.rpc import wait_for_server
from emily.bus.schemas.cognition import ObserveRequest
from emily.bus.schemas.dialogue import DEFAULT_USER
from emily.bus.schemas.lifecycle import ForgetRequest
from emily.bus.schemas.memory import EpisodeIn, RecallRequest, StoreRequest
from emily.errors import BusError
from emily.observe.http import bearer_ok

#: How long a tool waits for its service to appear on the bus before saying it is absent (s).
ABSENT_S = 5.0
INSTRUCTIONS = (
    "Emily's long-term memory and cognitive cycle. Use remember to keep what the user "
    "says, recall to look up what they said before (scoped by user), forget to remove "
    "episodes everywhere, and observe to run one full cycle that answers and remembers."
)


class Bus:
    """The bus calls behind the tools: one open session, one deadline per call (s)."""

    def __init__(self, session: zenoh.Session, keys: Keys, timeout_s: float) -> None:
        self.session = session
        self.keys = keys
        self.timeout_s = timeout_s

    def call(self, endpoint: Endpoint[Any, Any], build: Any, **fields: Any) -> Any:
        """``endpoint``'s reply to ``build(**fields)``; every failure is a :class:`ToolError`."""
        try:
            request: Message = build(**{k: v for k, v in fields.items() if v is not None})
        except ValidationError as exc:
            why = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ToolError(f"invalid arguments: {why}") from exc
        key = endpoint.key(self.keys)
        if not wait_for_server(self.session, key, timeout_s=min(ABSENT_S, self.timeout_s)):
            raise ToolError(
                f"no {endpoint.service} service answers on {key}: start the stack with "
                f"`emily up`, or the service with `emily serve {endpoint.service}`"
            )
        try:
            return endpoint.call(self.session, self.keys, request, timeout_s=self.timeout_s)
        except BusError as exc:  # RequestFailed included: "bad_request: ..."
            raise ToolError(f"{endpoint.name} failed: {exc}") from exc

    async def acall(self, endpoint: Endpoint[Any, Any], build: Any, **fields: Any) -> Any:
        """:meth:`call` on a worker thread, so the protocol's event loop keeps serving."""
        call: Callable[[], Any] = partial(self.call, endpoint, build, **fields)
        return await anyio.to_thread.run_sync(call)


def build_server(bus: Bus, host: str = "127.0.0.1", port: int = 8464) -> FastMCP:
    """The MCP server with the four tools over ``bus``. ``host`` and ``port`` matter only
    to streamable HTTP: on a loopback ``host`` the SDK also refuses requests whose
    ``Host`` or ``Origin`` header names another machine (DNS rebinding)."""
    server = FastMCP("emily", instructions=INSTRUCTIONS, host=host, port=port)

    @server.tool()
    async def remember(
        text: str,
        user: str = DEFAULT_USER,
        session: str | None = None,
        role: Literal["user", "assistant", "system"] = "user",
        act: Literal["statement", "question", "command", "answer"] = "statement",
    ) -> dict[str, Any]:
        """Store one episode in ``user``'s memory; returns its id and whether it is
        already durable in Postgres (else queued, delivered shortly)."""
        episode = _valid(
            EpisodeIn, text=text, user=user, session=session, role=role, act=act, source="mcp"
        )
        reply = await bus.acall(STORE, StoreRequest, episodes=[episode])
        return {"id": str(reply.ids[0]), "durable": reply.durable}

    @server.tool()
    async def recall(
        query: str,
        k: int = 5,
        user: str = DEFAULT_USER,
        search: Literal["vector", "hybrid"] = "vector",
    ) -> dict[str, Any]:
        """The ``k`` (1..100) episodes of ``user`` nearest in meaning to ``query``, best
        first, with their cosine similarity."""
        reply = await bus.acall(RECALL, RecallRequest, text=query, k=k, user=user, search=search)
        return {
            "memories": [
                {
                    "id": str(h.episode.id),
                    "text": h.episode.text,
                    "score": round(h.score, 4),
                    "timestamp": h.episode.timestamp.isoformat(),
                    "role": h.episode.role,
                    "act": h.episode.act,
                    "session": h.episode.session,
                }
                for h in reply.hits
            ]
        }

    @server.tool()
    async def forget(
        ids: list[str] | None = None,
        match: str | None = None,
        user: str = DEFAULT_USER,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Forget ``user``'s episodes given by ``ids`` or containing ``match``
        (case-insensitive; exactly one of the two) from every tier, with the facts drawn
        only from them; ``dry_run`` only reports what would go."""
        reply = await bus.acall(
            FORGET, ForgetRequest, ids=ids, match=match, user=user, dry_run=dry_run
        )
        return {
            "forgotten": [str(i) for i in reply.forgotten],
            "missing": [str(i) for i in reply.missing],
            "facts_removed": reply.facts_removed,
            "dry_run": reply.dry_run,
        }

    @server.tool()
    async def observe(
        text: str,
        user: str = DEFAULT_USER,
        session: str | None = None,
        allow_llm: bool = True,
        max_tokens: int = 128,
    ) -> dict[str, Any]:
        """Run one cognitive cycle on what ``user`` said: Emily answers (from a reflex,
        her memory or the language model) and remembers the turn."""
        reply = await bus.acall(
            OBSERVE,
            ObserveRequest,
            text=text,
            user=user,
            session=session,
            allow_llm=allow_llm,
            max_tokens=max_tokens,
        )
        t = reply.trace
        return {
            "action": reply.action,
            "response": reply.response,
            "tier": t.tier,
            "policy": t.policy,
            "memories": [m.text for m in t.memories],
            "episode": t.episode,
            "cycle_id": str(t.cycle_id),
        }

    return server


def _valid(model: type[Message], **fields: Any) -> Message:
    try:
        return model(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        why = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ToolError(f"invalid arguments: {why}") from exc


class BearerGuard:
    """ASGI middleware: every HTTP request needs ``Authorization: Bearer <token>``."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers", []))
            if not bearer_ok(headers.get(b"authorization", b"").decode("latin-1"), self.token):
                body = (
                    b'{"error": {"message": "missing or wrong bearer token: send '
                    b'\'Authorization: Bearer <token>\'", "type": "authentication_error", '
                    b'"code": "unauthorized", "param": null}}'
                )
                head = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
                await send({"type": "http.response.start", "status": 401, "headers": head})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def serve_http(server: FastMCP, token: str | None) -> None:
    """Serve streamable HTTP at ``http://host:port/mcp`` (the server's settings) until
    interrupted."""
    import uvicorn

    host, port = server.settings.host, server.settings.port
    app: Any = server.streamable_http_app()
    if token is not None:
        app = BearerGuard(app, token)
    uvicorn.run(app, host=host, port=port, log_level="warning")
