"""``emily mcp``: its options; the server itself (and the SDK) load only when it runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from emily.bus import BusConfig, open_session
from emily.observe.http import read_token


def run(args: argparse.Namespace) -> int:
    """``emily mcp``: serve the tools on stdio or streamable HTTP until stopped."""
    from emily.mcp.server import Bus, build_server, serve_http

    token = read_token(Path(args.api_key_file) if args.api_key_file else None, "mcp")
    bus_cfg = BusConfig.load()
    session = open_session(bus_cfg)
    try:
        server = build_server(Bus(session, bus_cfg.keys, args.timeout), args.host, args.port)
        if args.transport == "stdio":
            server.run("stdio")
        else:
            serve_http(server, token)
    finally:
        session.close()  # type: ignore[no-untyped-call]
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``emily mcp``."""
    p = sub.add_parser(
        "mcp", help="serve remember, recall, forget and observe to MCP clients (stdio or HTTP)"
    )
    p.add_argument(
        "--transport",
        choices=("stdio", "http"),
        default="stdio",
        help="stdio (started by the MCP client) or streamable HTTP at /mcp",
    )
    p.add_argument("--host", default="127.0.0.1", help="HTTP address")
    p.add_argument("--port", type=int, default=8464, help="HTTP port")
    p.add_argument(
        "--api-key-file", default=None, help="HTTP: a file with the bearer token to require"
    )
    p.add_argument(
        "--timeout", type=float, default=120.0, help="deadline of one tool's bus call (s)"
    )
    p.set_defaults(func=run)
