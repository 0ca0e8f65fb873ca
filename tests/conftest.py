"""Shared fixtures: real servers on loopback, never mocks.

Zenoh runs in peer mode on 127.0.0.1 with multicast scouting off: one session listens
on a free port and the others connect to it, exactly as services do on a laptop.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zenoh

from emily.bus import BusConfig, open_session
from emily.embed import Embedder

REPO = Path(__file__).resolve().parent.parent

# Shared fixtures of real servers, one module each under tests/fixtures/.
pytest_plugins: list[str] = ["tests.fixtures.postgres", "tests.fixtures.llm"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own state and config dirs, so nothing touches the user's."""
    monkeypatch.setenv("EMILY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("EMILY_CONFIG", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(scope="session")
def bus_configs() -> tuple[BusConfig, BusConfig]:
    """Configs of a listening peer and a peer that connects to it, on loopback."""
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    server = BusConfig(node="test", listen=(endpoint,), connect=())
    client = BusConfig(node="test", listen=(), connect=(endpoint,))
    return server, client


@pytest.fixture(scope="session")
def zenoh_pair(
    bus_configs: tuple[BusConfig, BusConfig],
) -> Iterator[tuple[zenoh.Session, zenoh.Session]]:
    """Two real Zenoh sessions connected over loopback TCP: (server side, client side)."""
    server = open_session(bus_configs[0])
    client = open_session(bus_configs[1])
    yield server, client
    client.close()
    server.close()


@pytest.fixture(scope="session")
def minilm() -> Embedder:
    """The real MiniLM-L6 model, loaded offline once per session (memory's embedder)."""
    return Embedder(device="cpu")


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_SESSION] = session


def pytest_unconfigure(config: pytest.Config) -> None:
    """Exit with the session's status even when a library thread outlives the tests.

    A Zenoh callback thread (``pyo3-closure``) that a session left behind is not a
    daemon, and the interpreter would wait for it forever after the last test; the run
    is over by now (results and coverage reported), so such threads are named on stderr
    and the process exits with the status pytest decided.
    """
    session = config.stash.get(_SESSION, None)
    left = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    if session is None or not left:
        return
    names = ", ".join(sorted(t.name for t in left))
    print(f"\nthreads still running after the tests, not waited for: {names}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(session.exitstatus))


_SESSION = pytest.StashKey["pytest.Session"]()
