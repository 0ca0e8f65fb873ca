"""``emily up [--demo]``: the whole stack on a laptop, as ``emily serve`` subprocesses.

The first service listens on the rendezvous endpoint (``tcp/127.0.0.1:7447`` by
default); the others connect to it, all as Zenoh peers on loopback. ``emily up`` waits
for every service's liveliness token, then either runs a short demo (``--demo``: a few
observations with their traces) and stops, or keeps running until Ctrl-C. It always
stops the services it started (SIGTERM, then SIGKILL after a grace period). Each
service's output goes to ``<state dir>/logs/<service>.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from emily.bus import BusConfig, open_session
from emily.bus.client import Client
from emily.bus.endpoints import OBSERVE
from emily.bus.health import alive
from emily.bus.schemas.cognition import ObserveRequest
from emily.cli.observe import format_trace
from emily.cli.serve import SERVICES
from emily.config import state_dir
from emily.errors import EmilyError

ORDER = ("memory", "inference", "perception", "cognition")
DEMO = (
    ("hello", True),
    ("My favourite tea is a smoky lapsang souchong.", False),
    ("What did I tell you about tea?", False),
    ("In one sentence, why do leaves change colour in autumn?", True),
    ("stop", True),
)


class Stack:
    """The service subprocesses started by ``emily up``."""

    def __init__(self, endpoint: str, node: str, logs: Path) -> None:
        self.endpoint = endpoint
        self.node = node
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, listen: bool) -> None:
        """Start ``emily serve <name>``, listening on or connecting to the endpoint."""
        env = dict(os.environ)
        env["EMILY_BUS__NODE"] = self.node
        env["EMILY_BUS__MODE"] = "peer"
        env["EMILY_BUS__LISTEN"] = json.dumps([self.endpoint] if listen else [])
        env["EMILY_BUS__CONNECT"] = json.dumps([] if listen else [self.endpoint])
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("ab")
        cmd = [sys.executable, "-m", "emily", "serve", name]
        self.procs[name] = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def exited(self) -> dict[str, int]:
        """Services whose process has ended, with their exit codes."""
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM every service, wait up to ``grace_s`` seconds, then SIGKILL."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def wait_healthy(stack: Stack, names: list[str], bus: BusConfig, timeout_s: float) -> None:
    """Block until every service in ``names`` has a liveliness token, with progress lines."""
    session = open_session(bus)
    try:
        deadline = time.monotonic() + timeout_s
        seen: set[str] = set()
        while True:
            up = set(alive(session, bus.keys, timeout_s=0.5)) & set(names)
            for name in sorted(up - seen):
                print(f"  {name:<10} up", flush=True)
            seen |= up
            if seen >= set(names):
                return
            dead = {n: rc for n, rc in stack.exited().items() if n in names}
            if dead:
                name, rc = next(iter(dead.items()))
                raise EmilyError(f"{name} exited with code {rc}; see {stack.logs / name}.log")
            if time.monotonic() > deadline:
                raise EmilyError(
                    f"{sorted(set(names) - seen)} not healthy after {timeout_s:g} s; "
                    f"see the logs in {stack.logs}"
                )
            time.sleep(0.5)
    finally:
        session.close()  # type: ignore[no-untyped-call]


def demo(bus: BusConfig) -> None:
    """Send the demo observations and print each response and trace."""
    with Client.connect(bus, OBSERVE, wait_s=30) as client:
        for text, llm in DEMO:
            request = ObserveRequest(text=text, allow_llm=llm, max_tokens=48)
            reply = client.call(OBSERVE, request, 180)
            print(f"\n> {text}\n{reply.response}\n{format_trace(reply.trace)}", flush=True)
            time.sleep(0.5)  # let the episode reach memory before the next question


def run(args: argparse.Namespace) -> int:
    """Start the services, wait for health, demo or wait for Ctrl-C, stop everything."""
    names = [n for n in ORDER if n in SERVICES]
    missing = [n for n in ORDER if n not in SERVICES]
    if missing:
        print(f"not available in this build: {', '.join(missing)} (starting the others)")
    if not names:
        raise EmilyError("no service is registered with `emily serve`; nothing to start")
    stack = Stack(args.endpoint, args.node, state_dir() / "logs")
    bus = BusConfig(node=args.node, mode="peer", connect=(args.endpoint,), listen=())

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    print(f"starting {', '.join(names)} on {args.endpoint} (logs in {stack.logs})", flush=True)
    try:
        for i, name in enumerate(names):
            stack.start(name, listen=(i == 0))
        wait_healthy(stack, names, bus, args.timeout)
        print("all services are up", flush=True)
        if args.demo:
            if "cognition" in names:
                demo(bus)
            return 0
        print("press Ctrl-C to stop", flush=True)
        while not stack.exited():
            time.sleep(0.5)
        print(f"a service stopped: {stack.exited()}; stopping the others", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 130
    finally:
        stack.stop()
        print("stopped", flush=True)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``emily up``."""
    p = sub.add_parser(
        "up", help="start memory, inference, perception and cognition on this machine"
    )
    p.add_argument("--demo", action="store_true", help="send a few observations, then stop")
    p.add_argument("--endpoint", default="tcp/127.0.0.1:7447", help="Zenoh rendezvous endpoint")
    p.add_argument("--node", default="local", help="node name (key chunk under emily/)")
    p.add_argument("--timeout", type=float, default=600.0, help="wait for health (s)")
    p.set_defaults(func=run)
