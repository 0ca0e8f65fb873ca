"""A running ``emily up`` (inference and cognition) used as a user would: ``emily chat``
through a pipe, the services' ``/metrics`` with process metrics, their log files with
the start-up line, and ``emily model use`` restarting only inference."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from emily.bus import BusConfig
from emily.cli.infer import live_info
from emily.cli.supervise import alive
from emily.errors import EmilyError
from tests.cli.test_up import Up
from tests.conftest import free_port

pytestmark = pytest.mark.slow


class Stack:
    """``emily up --services inference,cognition`` on its own state dir and ports."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.ports = {"inference": free_port(), "cognition": free_port()}
        self.env = {
            "EMILY_STATE_DIR": str(state),
            "EMILY_INFERENCE__HTTP_PORT": str(self.ports["inference"]),
            "EMILY_COGNITION__HTTP_PORT": str(self.ports["cognition"]),
        }
        self.up = Up("--services", "inference,cognition", "--node", "stack", env=self.env)
        self.up.expect("all services are up")
        self.bus = BusConfig(node="stack", connect=(self.up.endpoint,), listen=())

    def emily(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            **self.env,
            "EMILY_BUS__NODE": "stack",
            "EMILY_BUS__CONNECT": json.dumps([self.up.endpoint]),
            "EMILY_BUS__LISTEN": "[]",
        }
        return subprocess.run(
            [sys.executable, "-m", "emily", *args],
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def services(self) -> dict[str, int]:
        data = json.loads((self.state / "run" / "up.json").read_text())
        return {str(k): int(v) for k, v in data["services"].items()}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("stack") / "state")
    yield s
    if s.up.proc.poll() is None:
        s.up.stop()


def test_chat_talks_to_the_agent_in_one_session_with_feedback(stack: Stack) -> None:
    turns = "hello\n/help\nWhat is a lighthouse?\n/good\n/frobnicate\n/quit\nnever read\n"
    out = stack.emily("chat", "--trace", "--max-tokens", "16", stdin=turns)
    assert out.returncode == 0, out.stderr
    tiers = [ln for ln in out.stdout.splitlines() if ln.startswith("  [tier ")]
    assert len(tiers) == 3, out.stdout  # two turns and the feedback
    assert "/good   the last answer was good" in out.stdout
    assert out.stderr.strip() == "emily chat: unknown command /frobnicate; /help lists them"
    replies = stack.emily("chat", "--json", "--session", "s-1", stdin="hello\nhi again\n")
    assert replies.returncode == 0, replies.stderr
    cycles = [json.loads(ln) for ln in replies.stdout.splitlines()]
    assert len(cycles) == 2 and all(c["trace"]["cycle_id"] for c in cycles)


def test_raw_chat_is_the_bare_llm(stack: Stack) -> None:
    out = stack.emily("chat", "--raw", "--max-tokens", "8", "--temperature", "0", stdin="Hi\n")
    assert out.returncode == 0 and out.stdout.strip(), out.stderr
    assert "[tier" not in out.stdout


def test_observe_quiet_json_and_stdin(stack: Stack) -> None:
    quiet = stack.emily("observe", "-", "--quiet", "--no-llm", "--session", "q-1", stdin="hello\n")
    assert quiet.returncode == 0, quiet.stderr
    assert len(quiet.stdout.strip().splitlines()) == 1 and "tier" not in quiet.stdout
    full = stack.emily("observe", "hello", "--json", "--no-llm", "--session", "q-1")
    reply = json.loads(full.stdout)
    assert reply["response"] == quiet.stdout.strip()
    cycle = reply["trace"]["cycle_id"]
    feedback = stack.emily(
        "observe", "--feedback", "bad", "--feedback-for", cycle, "--session", "q-1", "--json"
    )
    assert feedback.returncode == 0, feedback.stderr
    infer = stack.emily("infer", "-", "--json", "--max-tokens", "4", stdin="The sky is")
    doc = json.loads(infer.stdout)
    assert doc["done"] and doc["usage"]["completion_tokens"] >= 1 and "text" in doc


def test_every_service_serves_process_metrics(stack: Stack) -> None:
    for name, port in stack.ports.items():
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read()
        values = {
            s.name: s.value
            for f in text_string_to_metric_families(body.decode())
            for s in f.samples
        }
        assert values["process_resident_memory_bytes"] > 10 * 2**20, name
        assert values["process_cpu_seconds_total"] > 0, name
        assert values["process_open_fds"] >= 3, name


def logged(path: Path, text: str, wait_s: float = 60.0) -> str:
    """The log's text once it holds ``text``: a service announces itself on the bus
    before it logs its start-up line, and ``emily up`` copies output as it comes."""
    deadline = time.monotonic() + wait_s
    while text not in (body := path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return body


def test_each_service_logs_its_start_up_line_with_its_address(stack: Stack) -> None:
    logs = stack.state / "logs"
    inference = logged(logs / "inference.log", "inference serving")
    cognition = logged(logs / "cognition.log", "cognition serving")
    assert f"http://127.0.0.1:{stack.ports['inference']}" in inference
    assert "inference serving" in inference and "emily/stack/inference/*" in inference
    assert "cognition serving on emily/stack/cognition/observe" in cognition
    assert f"HTTP http://127.0.0.1:{stack.ports['cognition']}" in cognition


def test_model_use_restarts_only_inference(stack: Stack) -> None:
    before = stack.services()
    loaded = Path(live_info(stack.bus, timeout_s=30).model_path)
    copy = stack.state / "models" / "second-model.gguf"
    os.link(loaded, copy)  # a second model file: the same weights under another name
    out = stack.emily("model", "use", "second-model")
    assert out.returncode == 0, out.stderr
    assert "restarted the inference service under emily up" in out.stdout
    stack.up.expect("inference  restarting, as asked")
    after = stack.services()
    assert after["cognition"] == before["cognition"] and alive(after["cognition"])
    assert after["inference"] != before["inference"] and not alive(before["inference"])
    deadline = time.monotonic() + 300
    while True:  # the new process loads the selected file
        try:
            now = live_info(stack.bus, timeout_s=5).model_path
        except EmilyError:  # not on the bus yet
            now = None
        if now == str(copy) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert now == str(copy)


def test_chat_on_a_terminal_edits_the_line_and_keeps_its_history(stack: Stack) -> None:
    """On a terminal (a pty), ``emily chat`` prompts, readline edits the line (Ctrl-A
    goes to its start) and the history file under the state dir keeps the turn."""
    main, side = pty.openpty()
    env = {
        **os.environ,
        **stack.env,
        "EMILY_BUS__NODE": "stack",
        "EMILY_BUS__CONNECT": json.dumps([stack.up.endpoint]),
        "EMILY_BUS__LISTEN": "[]",
        "TERM": "xterm",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "emily", "chat", "--no-llm"],
        stdin=side,
        stdout=side,
        stderr=side,
        env=env,
        close_fds=True,
    )
    os.close(side)
    seen = b""

    def read_until(marker: bytes, wait_s: float = 120.0) -> None:
        nonlocal seen
        deadline = time.monotonic() + wait_s
        while marker not in seen:
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            ready, _, _ = select.select([main], [], [], 1.0)
            if ready:
                try:
                    seen += os.read(main, 4096)
                except OSError:  # the child closed the terminal
                    break
        assert marker in seen, seen.decode(errors="replace")

    try:
        read_until(b"you> ")
        os.write(main, b"ello\x01h\r")  # typed "ello", Ctrl-A, "h": the line is "hello"
        read_until(b"emily> ")
        read_until(b"you> ")
        os.write(main, b"/quit\r")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)
    history = (stack.state / "chat_history").read_text().splitlines()
    assert "hello" in history and "/quit" in history
