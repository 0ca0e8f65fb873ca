"""``emily up --demo`` gives the same answers on every run, not only on a fresh state
dir: run twice on one state dir (memory keeps the first run's episodes), each run in a
new session, the answers are equal; and its questions are answered from its statements."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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
    answers = dict(re.findall(r"^> ([^\n]*)\n(.*?)   \[\w+\]$", out.stdout, flags=re.M | re.S))
    assert list(answers) == list(DEMO), out.stdout
    return out.stdout, answers


def test_the_demo_answers_the_same_on_every_run(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first_out, first = demo_run(state)
    second_out, second = demo_run(state)
    assert second == first
    sessions = re.findall(r"demo \(session (demo-\w+)\)", first_out + second_out)
    assert len(set(sessions)) == 2  # each run is a new conversation
    assert "lapsang souchong" in first["What is my favourite tea?"].lower()
    assert "lisbon" in first["Where does my sister Ada live?"].lower()
    assert first["What is my favourite tea?"] != "What is my favourite tea?"  # no parroting
