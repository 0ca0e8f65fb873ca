"""Every .nix file in the repository parses (``nix-instantiate --parse``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

SKIP_DIRS = {".venv", ".git", "result", ".direnv"}


def nix_files() -> list[Path]:
    return sorted(
        p for p in REPO.rglob("*.nix") if not SKIP_DIRS.intersection(p.relative_to(REPO).parts)
    )


def test_there_are_nix_files() -> None:
    names = {p.relative_to(REPO).as_posix() for p in nix_files()}
    assert {"flake.nix", "modules/default.nix", "hosts/cloudlab/default.nix"} <= names


@pytest.mark.parametrize("path", nix_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_parses(path: Path) -> None:
    out = subprocess.run(
        ["nix-instantiate", "--parse", str(path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr


def test_parse_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nix"
    bad.write_text("{ a = ; }")
    out = subprocess.run(["nix-instantiate", "--parse", str(bad)], capture_output=True, text=True)
    assert out.returncode != 0 and "syntax error" in out.stderr
