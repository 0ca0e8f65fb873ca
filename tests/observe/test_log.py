from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from emily.errors import ConfigError
from emily.observe import setup_logging
from emily.observe.log import LogConfig, LogFile, effective_level


def test_level_from_argument_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    setup_logging("debug")
    assert logging.getLogger().level == logging.DEBUG
    monkeypatch.setenv("EMILY_LOG_LEVEL", "ERROR")
    setup_logging()
    assert logging.getLogger().level == logging.ERROR


def test_unknown_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        setup_logging("loud")


def test_argument_beats_env_beats_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "emily.toml"
    cfg.write_text('[log]\nlevel = "warning"\n')
    monkeypatch.setenv("EMILY_CONFIG", str(cfg))
    assert effective_level() == "WARNING"
    monkeypatch.setenv("EMILY_LOG_LEVEL", "debug")
    assert effective_level() == "DEBUG"
    assert effective_level("error") == "ERROR"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"EMILY_LOG__LEVEL": "chatty"}, "level 'chatty' is not one of"),
        ({"EMILY_LOG__MAX_BYTES": "100"}, "max_bytes must be at least 4096"),
        ({"EMILY_LOG__BACKUP_COUNT": "0"}, "backup_count must be at least 1"),
    ],
)
def test_bad_log_settings_are_config_errors(
    env: dict[str, str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match=says):
        LogConfig.load()


def test_log_file_rotates_at_its_size_and_keeps_its_count(tmp_path: Path) -> None:
    log = LogFile(tmp_path / "logs" / "svc.log", max_bytes=4096, backup_count=2)
    line = "x" * 99  # 100 bytes with its newline
    for n in range(200):
        log.write(f"{n:03d}{line[3:]}")
    log.close()
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["svc.log", "svc.log.1", "svc.log.2"]  # older ones deleted
    for name in files:
        assert (tmp_path / "logs" / name).stat().st_size <= 4096
    kept = [
        ln[:3]
        for n in ("svc.log.2", "svc.log.1", "svc.log")
        for ln in (tmp_path / "logs" / n).read_text().splitlines()
    ]
    assert kept == [f"{n:03d}" for n in range(200 - len(kept), 200)]  # the newest, in order


def test_follow_copies_a_childs_output_until_it_ends(tmp_path: Path) -> None:
    code = "import sys\nfor i in range(500): print(f'line {i}')\nsys.stderr.write('bye\\n')"
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert child.stdout is not None
    log = LogFile(tmp_path / "c.log", max_bytes=1 << 20, backup_count=1)
    log.follow(child.stdout, "test-follow").join(timeout=60)
    child.wait(timeout=60)
    log.close()
    lines = (tmp_path / "c.log").read_text().splitlines()
    assert lines == [f"line {i}" for i in range(500)] + ["bye"]
