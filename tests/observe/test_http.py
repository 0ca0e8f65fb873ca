from __future__ import annotations

import json
import socket
import urllib.request

from fastapi import FastAPI

from emily.observe.http import HTTPServer
from tests.conftest import free_port


def test_serves_until_closed() -> None:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    server = HTTPServer(app, "127.0.0.1", free_port(), name="test-http")
    try:
        assert server.wait_started()
        body = urllib.request.urlopen(f"{server.url}/ping", timeout=5).read()
        assert json.loads(body) == {"pong": "yes"}
    finally:
        server.close()
    host, port = server.url.removeprefix("http://").split(":")
    with socket.socket() as s:
        assert s.connect_ex((host, int(port))) != 0  # nothing listens any more


def test_port_in_use_never_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = HTTPServer(FastAPI(), "127.0.0.1", taken.getsockname()[1])
        assert not server.wait_started(timeout_s=10)
        server.close()
        assert isinstance(server.error, BaseException)  # kept, not an unhandled thread error
