"""Shared by the cognition benchmarks: services in their own processes, raw round trips.

Deployed, every service is its own process (a systemd unit), so the benchmarks start
them with ``python -m emily serve <service>`` on a loopback endpoint and keep the client
in the benchmark's process. The client sends pre-encoded requests and keeps the raw
reply bytes; replies are validated after the timed loop (the services still do all
their work: decoding, the cycle, the trace, encoding).

``python bench/cognition_common.py echo ENDPOINT NODE`` runs the same-run baseline: a
bare Zenoh queryable that echoes each query's payload from its callback, in a process
of its own like the services.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import zenoh
from common import free_port

from emily.bus import BusConfig, Keys, open_session
from emily.bus.rpc import wait_for_server
from emily.inference.store import embedded_model

ECHO = "bench/echo"


def raw_call(session: zenoh.Session, key: str, payload: bytes, timeout_s: float = 30.0) -> bytes:
    """One query with a pre-encoded payload; returns the single reply's bytes, unparsed."""
    got: list[bytes] = []
    for reply in session.get(key, payload=payload, timeout=timeout_s):
        if reply.ok is None:
            err = reply.err.payload.to_bytes() if reply.err is not None else b""
            raise RuntimeError(f"{key} answered with an error: {err.decode(errors='replace')}")
        got.append(reply.ok.payload.to_bytes())
    if len(got) != 1:
        raise RuntimeError(f"{key} sent {len(got)} replies where one was expected")
    return got[0]


def bus_env(
    endpoint: str, node: str, state: Path, connect: tuple[str, ...] = (), **extra: str
) -> dict[str, str]:
    """Environment of a service process that listens on ``endpoint`` under
    ``emily/<node>`` and connects to the peers at ``connect``."""
    env = dict(
        os.environ,
        EMILY_STATE_DIR=str(state),
        EMILY_BUS__NODE=node,
        EMILY_BUS__LISTEN=json.dumps([endpoint]),
        EMILY_BUS__CONNECT=json.dumps(list(connect)),
        HF_HUB_OFFLINE="1",
    )
    env.update(extra)
    return env


def inference_env(
    endpoint: str,
    node: str,
    state: Path,
    models: Path,
    connect: tuple[str, ...] = (),
    n_ctx: int = 1024,
    max_tokens: int = 16,
) -> dict[str, str]:
    """:func:`bus_env` of ``emily serve inference`` with the bundled Gemma 3 270M (copied
    into ``models``) on 2 threads, a context of ``n_ctx`` tokens, replies of at most
    ``max_tokens`` tokens, and its HTTP API on a free port rather than the default one."""
    return bus_env(
        endpoint,
        node,
        state,
        connect,
        EMILY_INFERENCE__MODEL_PATH=str(embedded_model(models)),
        EMILY_INFERENCE__N_CTX=str(n_ctx),
        EMILY_INFERENCE__N_THREADS="2",
        EMILY_INFERENCE__MAX_TOKENS=str(max_tokens),
        EMILY_INFERENCE__HTTP_PORT=str(free_port()),
    )


def serve_cmd(name: str) -> list[str]:
    """The command of ``emily serve <name>``."""
    return [sys.executable, "-m", "emily", "--log-level", "WARNING", "serve", name]


def echo_cmd(endpoint: str, node: str) -> list[str]:
    """The command of the echo baseline (:func:`echo_main`)."""
    return [sys.executable, __file__, "echo", endpoint, node]


@contextmanager
def process(
    cmd: list[str], env: dict[str, str], client: zenoh.Session, key: str, wait_s: float = 300.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` until the block ends; waits until some queryable serves ``key``."""
    proc = subprocess.Popen(cmd, env=env)
    try:
        if not wait_for_server(client, key, timeout_s=wait_s):
            raise SystemExit(f"{' '.join(cmd[-2:])} did not serve {key} within {wait_s:g} s")
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def echo_main(endpoint: str, node: str) -> None:
    """Serve :data:`ECHO` on ``endpoint``: reply with the query's payload, in the callback."""
    session = open_session(BusConfig(node=node, listen=(endpoint,), connect=()))

    def on_query(query: zenoh.Query) -> None:
        payload = query.payload.to_bytes() if query.payload is not None else b""
        query.reply(query.key_expr, payload)
        query.drop()  # type: ignore[no-untyped-call]

    queryable = session.declare_queryable(Keys(node).query(*ECHO.split("/")), on_query)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    queryable.undeclare()  # type: ignore[no-untyped-call]
    session.close()  # type: ignore[no-untyped-call]
    time.sleep(0.05)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "echo":
        echo_main(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit("usage: cognition_common.py echo ENDPOINT NODE")
