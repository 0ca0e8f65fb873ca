"""``emily config show``: every setting's effective value and where it came from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emily.cli.config import effective
from emily.errors import ConfigError


def test_each_value_names_its_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "emily.toml"
    cfg.write_text("[inference]\nn_ctx = 1024\nn_threads = 3\n[log]\nmax_bytes = 8192\n")
    monkeypatch.setenv("EMILY_CONFIG", str(cfg))
    monkeypatch.setenv("EMILY_INFERENCE__N_CTX", "4096")
    path, values = effective()
    got = {(v.section, v.key): (v.value, v.source) for v in values}
    assert path == cfg
    assert got["inference", "n_ctx"] == (4096, "$EMILY_INFERENCE__N_CTX")  # env wins
    assert got["inference", "n_threads"] == (3, str(cfg))
    assert got["log", "max_bytes"] == (8192, str(cfg))
    assert got["log", "backup_count"] == (5, "default")
    assert got["bus", "mode"] == ("peer", "default")
    assert got["", "state_dir"] == (Path(os.environ["EMILY_STATE_DIR"]), "$EMILY_STATE_DIR")
    sections = {v.section for v in values}
    assert {"bus", "cognition", "inference", "log", "memory", "perception"} <= sections


def test_a_bad_value_is_the_error_a_service_would_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMILY_LOG__MAX_BYTES", "12")
    with pytest.raises(ConfigError, match="max_bytes must be at least 4096"):
        effective()


def test_json_from_the_console_script(tmp_path: Path) -> None:
    env = {**os.environ, "EMILY_BUS__NODE": "lab", "EMILY_STATE_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "emily", "config", "show", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    node = next(s for s in doc["settings"] if (s["section"], s["key"]) == ("bus", "node"))
    assert node == {"section": "bus", "key": "node", "value": "lab", "source": "$EMILY_BUS__NODE"}
    assert doc["file"] is None
    text = subprocess.run(
        [sys.executable, "-m", "emily", "config", "show"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert 'node = "lab"  # $EMILY_BUS__NODE' in text and "[log]" in text
