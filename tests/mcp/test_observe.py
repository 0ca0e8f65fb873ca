"""The MCP ``observe`` tool against the real cognition service (both reflex stages) and
the real memory service: a fact told through MCP is recalled and answered from memory."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zenoh
from mcp.client.stdio import StdioServerParameters, stdio_client

from emily.bus import BusConfig
from emily.cognition.reflex import Reflex
from emily.embed import Embedder
from emily.memory.config import MemoryConfig
from emily.memory.core import Memory
from emily.memory.metrics import MemoryMetrics
from emily.memory.service import serve
from emily.memory.store import PgStore
from tests.cognition.conftest import (  # noqa: F401  (fixtures, used by name)
    cascade,
    embedder,
    fast_reflex,
    private_reflex,
    reflex_cache,
    start_cognition,
)
from tests.mcp.test_server import connected, data

pytestmark = pytest.mark.slow


@pytest.fixture
def stack(
    pg_dsn: str,
    minilm: Embedder,
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
    bus_configs: tuple[BusConfig, BusConfig],
    private_reflex: Reflex,  # noqa: F811
    tmp_path: Path,
) -> Iterator[dict[str, str]]:
    """Memory on the pair's listener, cognition connected to it; the env of `emily mcp`."""
    cfg = MemoryConfig(state=tmp_path / "memory", pool_timeout_s=1.0, consolidate_interval_s=0)
    mem = Memory(cfg, PgStore(pg_dsn, cfg), minilm, metrics=MemoryMetrics())
    memory = serve(mem, zenoh_pair[0], bus_configs[0].keys, workers=2)
    cognition = start_cognition(private_reflex, connect=bus_configs[0].listen)
    assert cognition.service.peers.wait("memory", 20)
    yield dict(
        os.environ,
        EMILY_STATE_DIR=str(tmp_path / "state"),
        EMILY_BUS__NODE=bus_configs[0].node,
        EMILY_BUS__LISTEN="[]",
        EMILY_BUS__CONNECT=json.dumps([*bus_configs[0].listen, cognition.endpoint]),
    )
    cognition.close()
    memory.close()


async def conversation(env: dict[str, str], errlog: Path) -> list[dict[str, Any]]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "emily", "mcp"], env=env)
    fact = "My sister Ana's birthday is on the fourteenth of March"
    with errlog.open("w") as err:
        async with connected(stdio_client(params, errlog=err)) as client:
            told = data(await client.call_tool("observe", {"text": fact, "allow_llm": False}))
            for _ in range(100):  # the cycle's episode reaches memory in the background
                found = data(await client.call_tool("recall", {"query": fact, "k": 1}))
                if found["memories"] and found["memories"][0]["text"] == fact:
                    break
                await asyncio.sleep(0.1)
            asked = data(
                await client.call_tool(
                    "observe",
                    {"text": "What did I tell you about my sister Ana?", "allow_llm": False},
                )
            )
            return [told, found, asked]


def test_observe_answers_from_what_was_told_through_mcp(
    stack: dict[str, str], tmp_path: Path
) -> None:
    told, found, asked = asyncio.run(conversation(stack, tmp_path / "mcp.stderr"))
    fact = "My sister Ana's birthday is on the fourteenth of March"
    assert told["episode"] in ("stored", "queued") and told["cycle_id"]
    assert found["memories"][0]["text"] == fact
    assert asked["tier"] == "memory" and fact in asked["memories"], asked
    assert "fourteenth of March" in asked["response"]
