"""``emily chat``: a conversation with the agent (cognition: reflex, memory, LLM), one
cycle per line, all in one session; ``--raw`` talks to the bare LLM instead.

On a terminal the line has readline editing, and the history is kept in
``<state dir>/chat_history``. Lines starting with ``/`` are commands (``/help``).
Standard input may also be a pipe: one turn per line, no prompts.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import uuid
from collections.abc import Iterator
from typing import Any

from emily.bus import BusConfig
from emily.bus.client import Client
from emily.bus.endpoints import CHAT, OBSERVE
from emily.bus.schemas.cognition import MAX_TEXT_CHARS, ObserveReply, ObserveRequest
from emily.bus.schemas.dialogue import DEFAULT_USER
from emily.bus.schemas.inference import ChatMessage, ChatRequest
from emily.cli.common import UsageError, check_text, invalid
from emily.cli.infer import add_sampling, print_stream
from emily.config import state_dir
from emily.errors import BusError

HELP = """\
commands:
  /help   this list
  /good   the last answer was good (the agent learns from it)
  /bad    the last answer was bad
  /quit   end the chat (also /exit, or Ctrl-D)
anything else is said to the agent"""
HISTORY_LINES = 1000


@contextlib.contextmanager
def line_editing(enabled: bool) -> Iterator[None]:
    """readline editing with a persistent history, on a terminal (a no-op otherwise)."""
    if not enabled:
        yield
        return
    try:
        import readline
    except ImportError:  # not every Python has it; input() still works
        yield
        return
    path = state_dir() / "chat_history"
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(HISTORY_LINES)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(path)


def lines(interactive: bool) -> Iterator[str]:
    """The user's lines, stripped and non-empty, until end of input."""
    while True:
        try:
            line = input("you> ") if interactive else sys.stdin.readline()
        except EOFError:
            return
        if not interactive and not line:
            return
        if line.strip():
            yield line.strip()


class Agent:
    """The cognition side of a chat: one session, feedback about the last answer."""

    def __init__(self, client: Client, args: argparse.Namespace, session: str) -> None:
        self.client = client
        self.args = args
        self.session = session
        self.last: uuid.UUID | None = None

    def _call(self, **fields: Any) -> ObserveReply:
        request = ObserveRequest(
            user=self.args.user,
            session=self.session,
            allow_llm=not self.args.no_llm,
            max_tokens=self.args.max_tokens or 128,
            **fields,
        )
        return self.client.call(OBSERVE, request, self.args.timeout)

    def say(self, text: str) -> ObserveReply:
        """One cycle for ``text``; remembers its cycle for ``/good`` and ``/bad``."""
        reply = self._call(text=check_text(text, MAX_TEXT_CHARS))
        self.last = reply.trace.cycle_id
        return reply

    def feedback(self, verdict: str) -> ObserveReply:
        """Feedback ``good`` or ``bad`` on the last answer."""
        if self.last is None:
            raise UsageError("there is no answer yet to give feedback on")
        return self._call(feedback=verdict, feedback_for=self.last)


def show(reply: ObserveReply, args: argparse.Namespace, prefix: str) -> None:
    """Print one reply: JSON, or the answer (with its tier and latency under ``--trace``)."""
    if args.json:
        print(reply.model_dump_json(), flush=True)
        return
    print(f"{prefix}{reply.response}", flush=True)
    if args.trace and not args.quiet:
        total = sum(reply.trace.latencies_ms.values())
        print(f"  [tier {reply.trace.tier}, policy {reply.trace.policy}, {total:.0f} ms]")


def session_of(args: argparse.Namespace) -> str:
    """``--session``, or a new id; a bad ``--user`` or ``--session`` is a usage error."""
    session = args.session or f"chat-{uuid.uuid4().hex[:12]}"
    try:
        ObserveRequest(user=args.user, session=session, feedback="good")
    except ValueError as exc:
        raise UsageError(invalid(exc)) from exc
    return session


def run_agent(args: argparse.Namespace, interactive: bool) -> int:
    """Chat with cognition until ``/quit`` or end of input."""
    prefix = "emily> " if interactive else ""
    session = session_of(args)
    with Client.connect(BusConfig.load(), OBSERVE, wait_s=args.wait) as client:
        agent = Agent(client, args, session)
        if interactive and not args.quiet:
            print(f"session {agent.session}; /help lists the commands, /quit ends the chat")
        for line in lines(interactive):
            command = line.lower()
            try:
                if command in ("/quit", "/exit"):
                    return 0
                if command == "/help":
                    print(HELP)
                elif command in ("/good", "/bad"):
                    show(agent.feedback(command[1:]), args, prefix)
                elif command.startswith("/"):
                    raise UsageError(f"unknown command {line.split()[0]}; /help lists them")
                else:
                    show(agent.say(line), args, prefix)
            except (UsageError, BusError) as exc:  # one bad turn does not end the chat
                print(f"emily chat: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
    return 0


def run_raw(args: argparse.Namespace, interactive: bool) -> int:
    """Chat with the bare language model, streamed, until ``/quit`` or end of input."""
    history: list[ChatMessage] = []
    if args.system:
        history.append(ChatMessage(role="system", content=args.system))
    with Client.connect(BusConfig.load(), CHAT, wait_s=args.wait) as client:
        for line in lines(interactive):
            command = line.lower()
            if command in ("/quit", "/exit"):
                return 0
            if command == "/help":
                print(HELP.replace("/good", "(/good and /bad need the agent: no --raw)\n  /good"))
                continue
            if command.startswith("/"):
                print("emily chat: --raw talks to the bare LLM: no feedback", file=sys.stderr)
                continue
            history.append(ChatMessage(role="user", content=line))
            request = ChatRequest(
                messages=tuple(history),
                max_tokens=args.max_tokens,
                temperature=args.temperature,
                stream=True,
            )
            if interactive:
                sys.stdout.write("emily> ")
            try:
                _, answer = print_stream(client.stream(CHAT, request, args.timeout))
            except BusError as exc:
                history.pop()
                print(f"emily chat: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
                continue
            history.append(ChatMessage(role="assistant", content=answer))
    return 0


def run(args: argparse.Namespace) -> int:
    """Read lines until ``/quit`` or end of input; answer each (agent, or ``--raw`` LLM)."""
    if args.system and not args.raw:
        raise UsageError("--system is for the bare LLM: add --raw")
    interactive = sys.stdin.isatty() and not args.json
    with line_editing(interactive):
        return run_raw(args, interactive) if args.raw else run_agent(args, interactive)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``emily chat``."""
    p = sub.add_parser("chat", help="talk with the agent (or the bare LLM with --raw)")
    p.add_argument("--raw", action="store_true", help="the bare LLM: no memory, no reflex")
    p.add_argument("--trace", action="store_true", help="show the tier that answered")
    p.add_argument("--user", default=DEFAULT_USER, help="whose memory the chat uses")
    p.add_argument("--session", default=None, help="conversation id (default: a new one)")
    p.add_argument("--no-llm", action="store_true", help="never deliberate with the LLM")
    p.add_argument("--system", default=None, help="with --raw: a system message to start with")
    p.add_argument("--wait", type=float, default=10.0, help="wait this long for the service (s)")
    p.add_argument("--json", action="store_true", help="print each reply as a JSON line")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the answers")
    add_sampling(p)
    p.set_defaults(func=run)
