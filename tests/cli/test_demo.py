"""``emily up --demo`` starts every service, answers its questions from its statements
and stops; and it gives the same answers on every run, not only on a fresh state dir:
run twice on one state dir (memory keeps the first run's episodes), each run in a new
session, the answers are equal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from emily.cli.main import main
from emily.cli.up import DEMO
from tests.conftest import free_port

pytestmark = pytest.mark.slow


def demo_run(state: Path) -> tuple[str, dict[str, str]]:
    """One ``emily up --demo --stop-after-demo``: its output and answer per demo line."""
    env = {
        "EMILY_STATE_DIR": str(state),
        "EMILY_INFERENCE__HTTP_PORT": str(free_port()),
        "EMILY_COGNITION__HTTP_PORT": str(free_port()),
        "EMILY_MEMORY__METRICS_PORT": str(free_port()),
    }
    cmd = [sys.executable, "-m", "emily", "up", "--demo", "--stop-after-demo"]
    cmd += ["--services", "memory,inference,cognition", "--endpoint"]
    cmd += [f"tcp/127.0.0.1:{free_port()}"]
    out = subprocess.run(
        cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=1200
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout, answers_of(out.stdout)


def answers_of(out: str) -> dict[str, str]:
    """The answer ``emily up --demo`` printed for each demo line, in order."""
    answers = dict(re.findall(r"^> ([^\n]*)\n(.*?)   \[\w+\]$", out, flags=re.M | re.S))
    assert list(answers) == list(DEMO), out
    return answers


def test_the_demo_starts_every_service_answers_and_the_same_on_every_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the first run in this process (the autouse fixture's state dir), perception too
    for port in ("COGNITION__HTTP", "INFERENCE__HTTP", "MEMORY__METRICS", "PERCEPTION__METRICS"):
        monkeypatch.setenv(f"EMILY_{port}_PORT", str(free_port()))
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    args = ["up", "--demo", "--stop-after-demo", "--endpoint", endpoint, "--node", "uptest"]
    assert main(args) == 0
    first_out = capsys.readouterr().out
    names = ("memory", "inference", "perception", "cognition")
    for name in names:
        assert f"{name:<10} up" in first_out
    # the questions are answered from the statements, never with a question
    asked = first_out.split("> What is my favourite tea?", 1)[1]
    assert "lapsang souchong" in asked and "Lisbon" in asked
    replies = [ln for ln in asked.splitlines() if ln.strip() and not ln.startswith("> ")]
    assert replies and not any("?" in ln for ln in replies), replies
    assert first_out.rstrip().endswith("stopped")
    state = tmp_path / "state"
    assert {p.name for p in (state / "logs").iterdir()} == {f"{n}.log" for n in names}
    first = answers_of(first_out)

    # the second on the same state dir, in a process of its own
    second_out, second = demo_run(state)
    assert second == first
    sessions = re.findall(r"demo \(session (demo-\w+)\)", first_out + second_out)
    assert len(set(sessions)) == 2  # each run is a new conversation
    assert "lapsang souchong" in first["What is my favourite tea?"].lower()
    assert "lisbon" in first["Where does my sister Ada live?"].lower()
    assert first["What is my favourite tea?"] != "What is my favourite tea?"  # no parroting
