"""The host's shell scripts pass ``shellcheck`` (and the check can fail)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.host.tools import run, tool

SCRIPTS = [
    REPO / "hosts" / "cloudlab" / "rotate-secrets.sh",
    REPO / "hosts" / "cloudlab" / "bus-certs.sh",
    REPO / "modules" / "backup" / "metrics.sh",
    REPO / "modules" / "backup" / "restore-drill.sh",
    REPO / "modules" / "storage" / "scrub-metrics.sh",
]


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(path: Path) -> None:
    out = run([tool("shellcheck"), "--shell=bash", path])
    assert out.returncode == 0, out.stdout


def test_injected_unquoted_variable_is_flagged(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $1/data\n")
    out = run([tool("shellcheck"), bad])
    assert out.returncode != 0 and "SC2086" in out.stdout
