"""Evaluating pure Nix expressions with the machine's nix-instantiate (no nixpkgs needed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import REPO


def nix_eval(expr: str, cwd: Path = REPO) -> Any:
    """``nix-instantiate --eval --strict --json -E expr``, decoded; raises with stderr on error."""
    out = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expr],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout)
