"""``emily observe`` and ``emily trace`` against the real cognition service (``emily up
--demo`` is tested in tests/cli/test_demo.py)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from emily.cli.main import main
from tests.cognition.conftest import RunningCognition
from tests.conftest import free_port


def use_bus(monkeypatch: pytest.MonkeyPatch, endpoint: str, node: str = "test") -> None:
    monkeypatch.setenv("EMILY_BUS__NODE", node)
    monkeypatch.setenv("EMILY_BUS__CONNECT", json.dumps([endpoint]))
    monkeypatch.setenv("EMILY_BUS__LISTEN", "[]")


def test_observe_prints_the_response_and_a_readable_trace(
    cognition: RunningCognition, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_bus(monkeypatch, cognition.endpoint)
    assert main(["observe", "good evening"]) == 0
    out = capsys.readouterr().out
    assert "Hello! I'm Emily" in out
    for label in ("tier", "reflex", "policies", "workspace", "latency ms", "episode"):
        assert label in out
    assert main(["observe", "--json", "--no-llm", "what is a good name for a cat"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["trace"]["policy"] != "deliberate"


def test_observe_without_a_service_says_how_to_start_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_bus(monkeypatch, f"tcp/127.0.0.1:{free_port()}")
    assert main(["observe", "--wait", "0.5", "hello"]) == 1
    assert "emily up" in capsys.readouterr().err


def test_trace_prints_broadcasts(
    cognition: RunningCognition, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_bus(monkeypatch, cognition.endpoint)

    def observe_later() -> None:
        time.sleep(1.0)
        main(["observe", "thanks a lot"])

    t = threading.Thread(target=observe_later)
    t.start()
    assert main(["trace", "--count", "1", "--timeout", "60"]) == 0
    t.join()
    out = capsys.readouterr().out
    assert "cycle " in out and "ignited" in out and "percept" in out


def test_trace_times_out_with_advice(
    cognition: RunningCognition, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_bus(monkeypatch, cognition.endpoint)
    assert main(["trace", "--timeout", "0.5"]) == 1
    assert "emily observe" in capsys.readouterr().err
