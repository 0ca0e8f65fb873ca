"""``emily up [--demo]``: the whole stack on a laptop, as supervised ``emily serve`` processes.

``emily up`` holds the rendezvous endpoint (``tcp/127.0.0.1:7447`` by default) itself,
as a Zenoh peer on loopback, and every service connects to it; so any service can be
restarted without taking the others' meeting point with it. It waits for every
service's liveliness token, prints where to reach them, runs a short demo when asked
(``--demo``: a few statements, then questions about them, in a new conversation each
time so every run shows the same answers), and then keeps the stack running until
Ctrl-C (or stops after the demo with ``--stop-after-demo``). A service that exits is
restarted with backoff, and one that keeps crashing is left stopped while the others go
on (:mod:`emily.cli.supervise`). Each service's output goes to
``<state dir>/logs/<service>.log``, rotated by size (``[log]`` settings).

Another command asks for a service to be restarted (``emily model use`` for inference)
by writing its name to ``<state dir>/run/restart`` and sending SIGUSR1: only that
service restarts, the others keep running.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from types import FrameType

import zenoh

from emily.bus import BusConfig, open_session
from emily.bus.client import Client
from emily.bus.endpoints import OBSERVE
from emily.bus.health import alive
from emily.bus.schemas.cognition import ObserveRequest
from emily.cli.observe import format_trace
from emily.cli.serve import SERVICES
from emily.cli.status import urls
from emily.cli.supervise import PidFile, RestartPolicy, Supervisor
from emily.config import state_dir
from emily.errors import EmilyError
from emily.observe.log import LogConfig, check_level

ORDER = ("memory", "inference", "perception", "cognition")
#: The demo: a greeting, statements, then questions answered from what was stated.
#: The language model stays out of it, so every run gives the same answers.
DEMO = (
    "hello",
    "My favourite tea is a smoky lapsang souchong.",
    "My sister Ada lives in Lisbon.",
    "What is my favourite tea?",
    "Where does my sister Ada live?",
)


def say(line: str) -> None:
    """A progress line on the terminal, at once."""
    print(line, flush=True)


def wait_healthy(
    sup: Supervisor,
    session: zenoh.Session,
    bus: BusConfig,
    timeout_s: float,
    stop: StopRequest,
) -> list[str]:
    """Block until every service that is not given up has a liveliness token; returns
    the services that are up. Restarts what exits meanwhile; raises KeyboardInterrupt
    once ``stop`` was asked for."""
    deadline = time.monotonic() + timeout_s
    seen: set[str] = set()
    while True:
        stop.check()
        sup.check()
        wanted = set(sup.running())
        up = set(alive(session, bus.keys, timeout_s=0.5)) & wanted
        for name in sorted(up - seen):
            say(f"  {name:<10} up")
        seen |= up
        if not wanted:
            raise EmilyError(f"no service stayed up; see the logs in {sup.logs}")
        if seen >= wanted:
            return sorted(seen)
        if time.monotonic() > deadline:
            raise EmilyError(
                f"{sorted(wanted - seen)} not healthy after {timeout_s:g} s; "
                f"see the logs in {sup.logs}"
            )
        time.sleep(0.5)


def demo(bus: BusConfig, stop: StopRequest, trace: bool = False) -> list[str]:
    """Send the demo observations in a new session; print each answer (and its trace).

    Returns the answers, in order; raises KeyboardInterrupt between two observations
    once ``stop`` was asked for.
    """
    session = f"demo-{uuid.uuid4().hex[:12]}"
    say(f"\ndemo (session {session}):")
    answers = []
    with Client.connect(bus, OBSERVE, wait_s=30) as client:
        for text in DEMO:
            stop.check()
            request = ObserveRequest(text=text, allow_llm=False, session=session)
            reply = client.call(OBSERVE, request, 180)
            answers.append(reply.response)
            say(f"\n> {text}\n{reply.response}   [{reply.trace.tier}]")
            if trace:
                say(format_trace(reply.trace))
            time.sleep(0.5)  # let the episode reach memory before the next question
    return answers


class StopRequest:
    """SIGTERM and SIGINT as a flag that ``emily up``'s loops look at.

    The handler only records the signal; the loops raise KeyboardInterrupt from their
    own code. A handler that raised could fire inside any bytecode, and one that fired
    while a lazy import ran a dataclass's generated code (``exec`` of a string) marks
    the interpreter as killed by an unhandled KeyboardInterrupt: it then exits by SIGINT
    after ``emily up`` stopped everything, instead of with 130. Recording only also
    means that a second Ctrl-C cannot cut short the clean-up that stops the services.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signum = signum

    def check(self) -> None:
        """Raise KeyboardInterrupt once a stop was asked for."""
        if self.signum is not None:
            raise KeyboardInterrupt


class RestartRequests:
    """Services other commands asked ``emily up`` to restart (SIGUSR1 and a file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending = False
        signal.signal(signal.SIGUSR1, self._on_signal)

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.pending = True  # only a flag: the main loop does the work

    def take(self) -> list[str]:
        """The names asked for since the last call (the file is consumed)."""
        if not self.pending:
            return []
        self.pending = False
        try:
            names = self.path.read_text().split()
        except OSError:
            return []
        self.path.unlink(missing_ok=True)
        return names


#: glibc malloc arenas per service process (unless the environment sets it): by default
#: each of a service's ~50 threads may get its own, up to 8 per core, and each keeps
#: the memory its thread freed, which ``bench/memory_rss.py`` saw grow with the load.
MALLOC_ARENA_MAX = "2"


def service_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment of every supervised service: this one, the bus settings of the
    rendezvous, the log level if given, and ``MALLOC_ARENA_MAX`` unless already set."""
    env = dict(os.environ)
    env["EMILY_BUS__NODE"] = args.node
    env["EMILY_BUS__MODE"] = "peer"
    env["EMILY_BUS__LISTEN"] = "[]"
    env["EMILY_BUS__CONNECT"] = json.dumps([args.endpoint])
    env.setdefault("MALLOC_ARENA_MAX", MALLOC_ARENA_MAX)
    if getattr(args, "log_level", None):
        env["EMILY_LOG_LEVEL"] = check_level(args.log_level)
    return env


def run(args: argparse.Namespace) -> int:
    """Start and supervise the services, demo if asked, serve until Ctrl-C, stop all."""
    wanted = [n.strip() for n in args.services.split(",") if n.strip()]
    unknown = sorted(set(wanted) - set(ORDER))
    if unknown:
        raise EmilyError(f"unknown service {', '.join(unknown)}; choose from {', '.join(ORDER)}")
    names = [n for n in ORDER if n in wanted and n in SERVICES]
    if not names:
        raise EmilyError("no service to start; give --services from " + ", ".join(ORDER))
    pidfile = PidFile(state_dir() / "run" / "up.json")
    pidfile.claim(say)
    rendezvous = BusConfig(node=args.node, mode="peer", listen=(args.endpoint,), connect=())
    session = open_session(rendezvous)
    env = service_env(args)
    policy = RestartPolicy(backoff_s=args.backoff, restart_limit=args.restart_limit)
    sup = Supervisor(names, env, state_dir() / "logs", policy, say, LogConfig.load())
    requests = RestartRequests(state_dir() / "run" / "restart")
    client = BusConfig(node=args.node, mode="peer", connect=(args.endpoint,), listen=())

    stop = StopRequest()
    say(f"starting {', '.join(names)} on {args.endpoint} (logs in {sup.logs})")
    try:
        for name in names:
            stop.check()
            sup.start(name)
        pidfile.write(sup.pids())
        up = wait_healthy(sup, session, rendezvous, args.timeout, stop)
        pidfile.write(sup.pids())
        say("all services are up" if set(up) == set(names) else f"up: {', '.join(up)}")
        for name, url in urls().items():
            if name in up:
                say(f"  {name:<11} {url}")
        if args.demo and "cognition" in up:
            demo(client, stop, trace=args.trace)
        if args.stop_after_demo:
            return 0
        say("next: `emily chat`, `emily observe TEXT`, `emily status`; Ctrl-C stops")
        return supervise(sup, session, rendezvous, pidfile, requests, stop)
    except KeyboardInterrupt:
        say("\nstopping")
        return 130
    finally:
        sup.stop()
        session.close()  # type: ignore[no-untyped-call]
        pidfile.remove()
        say("stopped")


def supervise(
    sup: Supervisor,
    session: zenoh.Session,
    bus: BusConfig,
    pidfile: PidFile,
    requests: RestartRequests,
    stop: StopRequest,
) -> int:
    """Keep restarting what exits, and what ``requests`` names; say when a service goes
    down or comes back.

    Returns 1 when no service is left running (every one was given up); raises
    KeyboardInterrupt once ``stop`` was asked for.
    """
    shown = set(sup.running())
    while sup.running():
        stop.check()
        for name in requests.take():
            if name in sup.services:
                say(f"  {name:<10} restarting, as asked")
                sup.restart(name)
                pidfile.write(sup.pids())
        if sup.check():
            pidfile.write(sup.pids())
        up = set(alive(session, bus.keys, timeout_s=0.5))
        for name in sorted(up - shown):
            say(f"  {name:<10} up again")
        for name in sorted((shown - up) & set(sup.running())):
            say(f"  {name:<10} down")
        shown = up
        time.sleep(0.5)
    print("every service has stopped; see the logs", file=sys.stderr)
    return 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``emily up``."""
    p = sub.add_parser(
        "up",
        help="start and supervise the services on this machine",
    )
    p.add_argument("--demo", action="store_true", help="send a few observations first")
    p.add_argument("--trace", action="store_true", help="show each demo cycle's trace")
    p.add_argument(
        "--stop-after-demo", action="store_true", help="stop once started (and the demo ran)"
    )
    p.add_argument("--endpoint", default="tcp/127.0.0.1:7447", help="Zenoh rendezvous endpoint")
    p.add_argument("--node", default="local", help="node name (key chunk under emily/)")
    p.add_argument("--timeout", type=float, default=600.0, help="wait for health (s)")
    p.add_argument("--services", default=",".join(ORDER), help="which services to start")
    p.add_argument("--backoff", type=float, default=1.0, help="first restart delay (s)")
    p.add_argument(
        "--restart-limit", type=int, default=5, help="restarts within 2 minutes before giving up"
    )
    p.set_defaults(func=run)
