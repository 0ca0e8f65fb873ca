"""Bad input as a user types it: the real console script prints one clear line on
stderr, no traceback, and exits 2, before it tries to reach any service."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def emily(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emily", *args],
        input=stdin,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        (("observe", ""), None, "the text is empty"),
        (("observe", "   "), None, "the text is empty"),
        (("observe", "x" * 20_000), None, "20,000 characters; at most 4,096"),
        (("observe", "-"), "\n", "the text is empty"),
        (("observe", "-"), "y" * 5_000, "5,000 characters"),
        (("observe",), None, "observe one thing"),
        (("observe", "hi", "--image", "pic.png"), None, "observe one thing"),
        (("observe", "--image", "{missing}"), None, "cannot read"),
        (("observe", "--audio", "{empty}"), None, "is empty"),
        (("observe", "hi", "--session", "has spaces"), None, "session:"),
        (("observe", "hi", "--user", ""), None, "user:"),
        (("infer", ""), None, "the prompt is empty"),
        (("infer", "-"), "", "the prompt is empty"),
        (("chat", "--session", "a b"), "", "session:"),
        (("chat", "--system", "be brief"), "", "--system is for the bare LLM"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: tuple[str, ...], stdin: str | None, says: str, tmp_path: Path
) -> None:
    (tmp_path / "empty.wav").write_bytes(b"")
    filled = [a.format(missing=tmp_path / "absent.png", empty=tmp_path / "empty.wav") for a in args]
    out = emily(*filled, stdin=stdin)
    lines = out.stderr.splitlines()
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith(f"emily {args[0]}: ") and says in lines[0], lines[0]
    assert out.stdout == ""


def test_a_bad_option_value_is_argparse_usage_exit_2() -> None:
    out = emily("observe", "hi", "--feedback", "meh")
    assert out.returncode == 2 and "invalid choice: 'meh'" in out.stderr
    out = emily("observe", "--feedback", "good", "--feedback-for", "not-a-uuid")
    assert out.returncode == 2 and "is not a cycle id" in out.stderr


def test_a_bad_log_level_is_one_line_and_exit_2() -> None:
    said = "emily: unknown log level 'LOUD'; use DEBUG, INFO, WARNING or ERROR"
    out = emily("--log-level", "LOUD", "config", "show")
    assert out.returncode == 2 and out.stderr.strip() == said
    out = emily("config", "show", env={"EMILY_LOG_LEVEL": "loud"})
    assert out.returncode == 2 and out.stderr.strip() == said
    out = emily("serve", "memory", env={"EMILY_LOG__MAX_BYTES": "1"})
    assert out.returncode == 1 and len(out.stderr.splitlines()) == 1
    assert "max_bytes must be at least 4096" in out.stderr


def test_help_shows_the_defaults() -> None:
    out = emily("observe", "--help")
    assert out.returncode == 0 and "(default: 120.0)" in out.stdout
    out = emily("memory", "ingest", "--help")
    assert out.returncode == 0 and "(default: 256)" in out.stdout
