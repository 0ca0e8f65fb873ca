"""The console script as a user runs it: a real subprocess of the installed entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from emily import __version__
from emily.cli.main import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emily", *args], capture_output=True, text=True, timeout=120
    )


def test_version() -> None:
    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"emily {__version__}"
    assert __version__ != "0.0.0+unknown", "version comes from package metadata or pyproject.toml"


def test_help_lists_status() -> None:
    out = run("--help")
    assert out.returncode == 0 and "status" in out.stdout


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: emily" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error() -> None:
    out = run("frobnicate")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_status_json_subprocess() -> None:
    out = run("status", "--json", "--expect", "")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["emily"] == __version__
