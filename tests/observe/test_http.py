from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fastapi import FastAPI, Request

from emily.errors import ConfigError
from emily.observe.http import HTTPLimits, HTTPServer, bearer_ok, read_token
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


def echo_app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    return app


def closed_by_server(sock: socket.socket, wait_s: float = 20.0) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``wait_s`` seconds."""
    sock.settimeout(wait_s)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def ping(url: str) -> bool:
    return json.loads(urllib.request.urlopen(f"{url}/ping", timeout=10).read()) == {"pong": "yes"}


def test_idle_and_half_sent_connections_are_closed_and_requests_still_served() -> None:
    """Injected slow clients: one sends nothing, one half a request line, one headers
    and half its body. Each is closed by the server; a real request is answered
    meanwhile and after."""
    limits = HTTPLimits(header_timeout_s=0.5, body_timeout_s=1.0)
    server = HTTPServer(echo_app(), "127.0.0.1", free_port(), limits=limits)
    try:
        assert server.wait_started()
        idle, partial, slow_body = (connect(server.url) for _ in range(3))
        partial.sendall(b"GET /pi")
        slow_body.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        assert ping(server.url)
        for sock in (idle, partial, slow_body):
            assert closed_by_server(sock)
            sock.close()
        assert ping(server.url)
    finally:
        server.close()


def test_connections_beyond_the_limit_are_closed_on_arrival() -> None:
    limits = HTTPLimits(max_connections=4, header_timeout_s=60.0)
    server = HTTPServer(echo_app(), "127.0.0.1", free_port(), limits=limits)
    held: list[socket.socket] = []
    try:
        assert server.wait_started()
        held = [connect(server.url) for _ in range(4)]
        extra = connect(server.url)
        assert closed_by_server(extra)
        extra.close()
        for sock in held:
            sock.close()
        held = []
        for _ in range(100):  # the server notices the closed ones
            try:
                if ping(server.url):
                    break
            except OSError:
                time.sleep(0.05)
        assert ping(server.url)
    finally:
        for sock in held:
            sock.close()
        server.close()


def test_oversize_bodies_get_413_declared_or_chunked() -> None:
    server = HTTPServer(
        echo_app(), "127.0.0.1", free_port(), limits=HTTPLimits(max_body_bytes=1000)
    )
    try:
        assert server.wait_started()
        ok = urllib.request.Request(f"{server.url}/echo", data=b"x" * 1000, method="POST")
        assert json.loads(urllib.request.urlopen(ok, timeout=10).read()) == {"bytes": 1000}
        big = urllib.request.Request(f"{server.url}/echo", data=b"x" * 1001, method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(big, timeout=10)
        assert err.value.code == 413
        assert json.loads(err.value.read())["error"]["code"] == "payload_too_large"
        chunked = connect(server.url)
        chunk = b"%x\r\n%s\r\n" % (600, b"y" * 600)
        chunked.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunk * 2
            + b"0\r\n\r\n"
        )
        chunked.settimeout(10)
        assert chunked.recv(4096).startswith(b"HTTP/1.1 413")
        chunked.close()
        assert ping(server.url)
    finally:
        server.close()


def test_token_files_are_read_and_checked(tmp_path: Path) -> None:
    assert read_token(None, "inference") is None
    (tmp_path / "token").write_text("  abc123\n")
    assert read_token(tmp_path / "token", "inference") == "abc123"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match=r"\[cognition\] api_key_file .* is empty"):
        read_token(tmp_path / "empty", "cognition")
    with pytest.raises(ConfigError, match="cannot be read"):
        read_token(tmp_path / "missing", "inference")


def test_bearer_check() -> None:
    assert bearer_ok("", None) and bearer_ok("Bearer anything", None)
    assert bearer_ok("Bearer abc123", "abc123") and bearer_ok("bearer  abc123 ", "abc123")
    assert not bearer_ok("Bearer abc124", "abc123")
    assert not bearer_ok("Basic abc123", "abc123") and not bearer_ok("", "abc123")
