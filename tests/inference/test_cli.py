"""``emily infer`` and ``emily chat`` against the running service over Zenoh."""

from __future__ import annotations

import io
import json

import pytest

from emily.cli.infer import live_info, ms
from emily.cli.main import main
from tests.fixtures.llm import RunningInference

pytestmark = pytest.mark.slow


@pytest.fixture
def bus_env(inference_service: RunningInference, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMILY_BUS__NODE", inference_service.bus.node)
    monkeypatch.setenv("EMILY_BUS__CONNECT", json.dumps(list(inference_service.bus.connect)))


@pytest.mark.usefixtures("bus_env")
def test_infer_streams_a_completion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["infer", "The capital of France is", "--max-tokens", "4", "-v"]) == 0
    out = capsys.readouterr()
    assert out.out.strip()
    assert "tokens; ttft" in out.err


@pytest.mark.usefixtures("bus_env")
def test_infer_chat_mode(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["infer", "--chat", "What is two plus two?", "--max-tokens", "8", "--temperature", "0"]
    assert main(args) == 0
    assert capsys.readouterr().out.strip()


@pytest.mark.usefixtures("bus_env")
def test_chat_keeps_the_conversation(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("Hello!\nWhat is the capital of Japan?\n/exit\n"))
    # --raw: the bare language model (plain `emily chat` talks to cognition)
    assert main(["chat", "--raw", "--max-tokens", "8", "--temperature", "0"]) == 0
    out = capsys.readouterr().out
    # piped input: no prompts, one answer per line read until /exit
    assert len([line for line in out.splitlines() if line.strip()]) == 2


@pytest.mark.usefixtures("bus_env")
def test_infer_bad_input_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["infer", "hi", "--max-tokens", "5000"]) == 1
    assert "exceed the context" in capsys.readouterr().err


def test_infer_without_a_service_says_how_to_start_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("EMILY_BUS__CONNECT", f"tcp/127.0.0.1:{free_port()}")
    monkeypatch.setenv("EMILY_BUS__NODE", "nobody")
    assert main(["infer", "hi"]) == 1
    assert "emily serve inference" in capsys.readouterr().err


@pytest.mark.usefixtures("bus_env")
def test_infer_info_shows_the_live_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["infer", "--info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backend"] == "cpu" and info["model"] == "gemma-3-270m-q4_k_m"


def test_live_info_for_emily_status(inference_service: RunningInference) -> None:
    info = live_info(inference_service.bus, timeout_s=5)
    assert info.backend == "cpu" and info.queue_size == 2 and info.queue_depth == 0


def test_infer_needs_a_prompt(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["infer"]) == 2  # bad input: exit status 2, before any service is asked
    assert "give a prompt" in capsys.readouterr().err


def test_timings_print_without_a_first_token() -> None:
    assert ms(None) == "-" and ms(12.4) == "12 ms"
