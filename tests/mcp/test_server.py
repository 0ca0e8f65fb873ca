"""``emily mcp`` driven by the mcp SDK's own client, over stdio and streamable HTTP,
against the real memory service (Postgres + pgvector, MiniLM) on loopback Zenoh."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import zenoh
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from emily.bus import BusConfig
from emily.bus.endpoints import served_by
from emily.bus.rpc import wait_for_server
from emily.embed import Embedder
from emily.memory.config import MemoryConfig
from emily.memory.core import Memory
from emily.memory.metrics import MemoryMetrics
from emily.memory.service import MemoryService, serve
from emily.memory.store import PgStore
from tests.conftest import free_port

pytestmark = pytest.mark.slow
TOKEN = "test-only-mcp-token"


@pytest.fixture
def memory(
    pg_dsn: str,
    minilm: Embedder,
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
    bus_configs: tuple[BusConfig, BusConfig],
    tmp_path: Path,
) -> Iterator[dict[str, str]]:
    """Real memory on the pair's listening side; yields the env an `emily mcp` child needs."""
    cfg = MemoryConfig(state=tmp_path / "memory", pool_timeout_s=1.0, consolidate_interval_s=0)
    mem = Memory(cfg, PgStore(pg_dsn, cfg), minilm, metrics=MemoryMetrics())
    service: MemoryService = serve(mem, zenoh_pair[0], bus_configs[0].keys, workers=2)
    for endpoint in served_by("memory"):
        assert wait_for_server(zenoh_pair[1], endpoint.key(bus_configs[0].keys), timeout_s=10)
    env = dict(
        os.environ,
        EMILY_STATE_DIR=str(tmp_path / "state"),
        EMILY_BUS__NODE=bus_configs[0].node,
        EMILY_BUS__LISTEN="[]",
        EMILY_BUS__CONNECT=json.dumps(list(bus_configs[0].listen)),
    )
    yield env
    service.close()


@asynccontextmanager
async def connected(
    transport: AbstractAsyncContextManager[tuple[Any, ...]],
) -> AsyncIterator[ClientSession]:
    """An initialized SDK client session over ``transport`` (stdio or streamable HTTP)."""
    async with transport as streams, ClientSession(streams[0], streams[1]) as client:
        await client.initialize()
        yield client


def data(result: Any) -> dict[str, Any]:
    assert not result.isError, result.content
    out: dict[str, Any] = result.structuredContent
    return out


def error_text(result: Any) -> str:
    assert result.isError
    return " ".join(c.text for c in result.content)


async def session_over_stdio(env: dict[str, str], errlog: Path) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "emily", "mcp"], env=env)
    with errlog.open("w") as err:
        async with connected(stdio_client(params, errlog=err)) as client:
            await exercise(client)


async def exercise(client: ClientSession) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {"remember", "recall", "forget", "observe"}
    assert "user" in tools["recall"].inputSchema["properties"]

    rex = data(await client.call_tool("remember", {"text": "My dog is called Rex.", "user": "ann"}))
    assert rex["durable"]
    await client.call_tool("remember", {"text": "I work at the bakery.", "user": "ann"})
    await client.call_tool("remember", {"text": "My dog is called Bruno.", "user": "ben"})

    got = data(await client.call_tool("recall", {"query": "what is my dog's name?", "user": "ann"}))
    assert got["memories"][0]["text"] == "My dog is called Rex."
    assert got["memories"][0]["id"] == rex["id"]
    assert all(m["text"] != "My dog is called Bruno." for m in got["memories"])

    dry = data(await client.call_tool("forget", {"match": "dog", "user": "ann", "dry_run": True}))
    assert dry["forgotten"] == [rex["id"]] and dry["dry_run"]
    gone = data(await client.call_tool("forget", {"ids": [rex["id"]], "user": "ann"}))
    assert gone["forgotten"] == [rex["id"]]
    after = data(await client.call_tool("recall", {"query": "dog", "user": "ann"}))
    assert [m["text"] for m in after["memories"]] == ["I work at the bakery."]

    bad = await client.call_tool("recall", {"query": "dog", "k": 0})
    assert "k" in error_text(bad)
    both = await client.call_tool("forget", {"user": "ann"})
    assert "exactly one of ids or match" in error_text(both)
    # cognition is really absent here: the tool waits for it (mcp.server.ABSENT_S), then
    # says which service to start; meanwhile another tool call is answered
    absent = asyncio.ensure_future(
        client.call_tool("observe", {"text": "hello", "allow_llm": False})
    )
    await asyncio.sleep(0.5)  # the observe request is out first, its wait begun
    meanwhile = data(await client.call_tool("recall", {"query": "bakery", "user": "ann"}))
    assert meanwhile["memories"] and not absent.done()
    said = error_text(await absent)
    assert "no cognition service answers" in said and "emily serve cognition" in said


def test_the_sdk_client_remembers_recalls_and_forgets_over_stdio(
    memory: dict[str, str], tmp_path: Path
) -> None:
    errlog = tmp_path / "mcp.stderr"
    asyncio.run(session_over_stdio(memory, errlog))


def test_streamable_http_with_a_bearer_token(memory: dict[str, str], tmp_path: Path) -> None:
    key = tmp_path / "mcp.token"
    key.write_text(TOKEN)
    port = free_port()
    cmd = [sys.executable, "-m", "emily", "mcp", "--transport", "http", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--api-key-file", str(key)],
        env=memory,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "http.stderr").open("w"),
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.post(url, json={}, timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "did not start"
                time.sleep(0.2)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"

        async def over_http() -> None:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(headers=headers, timeout=60) as http:
                transport = streamable_http_client(url, http_client=http)
                async with connected(transport) as client:
                    await exercise(client)

        asyncio.run(over_http())
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_missing_token_file_is_one_clear_line(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "emily", "mcp", "--transport", "http"]
    out = subprocess.run(
        [*cmd, "--api-key-file", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert out.returncode == 1 and "api_key_file" in out.stderr and "cannot be read" in out.stderr
