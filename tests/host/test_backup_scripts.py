"""The backup scripts outside the VM: metrics.sh (textfile metrics of a run) and
restore-drill.sh against a real restic repository (scratch-directory mode)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.host.tools import run, tool

BACKUP = REPO / "modules" / "backup"


def metrics(textfile: Path, result: str, name: str = "ember") -> subprocess.CompletedProcess[str]:
    return run(["bash", BACKUP / "metrics.sh", textfile, name, result])


def values(path: Path) -> dict[str, float]:
    out = {}
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key.split("{")[0]] = float(value)
    return out


def test_success_records_both_timestamps(tmp_path: Path) -> None:
    assert metrics(tmp_path, "success").returncode == 0
    v = values(tmp_path / "emily_backup_ember.prom")
    assert v["emily_backup_last_run_success"] == 1
    assert (
        v["emily_backup_last_success_timestamp_seconds"]
        == v["emily_backup_last_run_timestamp_seconds"]
    )


def test_failure_keeps_the_last_success(tmp_path: Path) -> None:
    assert metrics(tmp_path, "success").returncode == 0
    first = values(tmp_path / "emily_backup_ember.prom")
    assert metrics(tmp_path, "exit-code").returncode == 0
    v = values(tmp_path / "emily_backup_ember.prom")
    assert v["emily_backup_last_run_success"] == 0
    assert (
        v["emily_backup_last_success_timestamp_seconds"]
        == first["emily_backup_last_success_timestamp_seconds"]
    )


def test_failure_without_history_has_no_success_timestamp(tmp_path: Path) -> None:
    assert metrics(tmp_path, "timeout").returncode == 0
    v = values(tmp_path / "emily_backup_ember.prom")
    assert v["emily_backup_last_run_success"] == 0
    assert "emily_backup_last_success_timestamp_seconds" not in v


def test_metrics_file_is_valid_exposition(tmp_path: Path) -> None:
    assert metrics(tmp_path, "success").returncode == 0
    text = (tmp_path / "emily_backup_ember.prom").read_text()
    out = run([tool("promtool"), "check", "metrics"], stdin=text)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not list(tmp_path.glob(".emily_backup_*")), "no temporary file is left behind"


def test_bad_name_is_refused(tmp_path: Path) -> None:
    out = metrics(tmp_path, "success", name="Bad Name")
    assert out.returncode == 2 and "must match" in out.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def restic_repo(tmp_path: Path) -> dict[str, str]:
    """A real local restic repository holding one snapshot of a small tree."""
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "episode.txt").write_text("the durable truth\n")
    (data / "sub" / "blob.bin").write_bytes(bytes(range(256)) * 64)
    password = tmp_path / "pw"
    password.write_text("drill-test-password\n")
    env = {
        "RESTIC_REPOSITORY": str(tmp_path / "repo"),
        "RESTIC_PASSWORD_FILE": str(password),
        "RESTIC_CACHE_DIR": str(tmp_path / "cache"),
    }
    assert run([tool("restic"), "init"], env=env).returncode == 0
    out = run([tool("restic"), "backup", data], env=env)
    assert out.returncode == 0, out.stderr
    return env


def drill(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return run(["bash", BACKUP / "restore-drill.sh", *args], env=env, timeout=300)


def test_restore_drill_verifies_and_reports_rto(
    restic_repo: dict[str, str], tmp_path: Path
) -> None:
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    out = drill(restic_repo, "--scratch-dir", tmp_path / "scratch", "--textfile-dir", textfile)
    assert out.returncode == 0, out.stderr
    m = re.fullmatch(
        r"restore-drill ok snapshot=[0-9a-f]{8} files=2 bytes=(\d+) rto_seconds=([\d.]+)\n",
        out.stdout,
    )
    assert m, out.stdout
    assert int(m[1]) == len("the durable truth\n") + 256 * 64
    v = values(textfile / "emily_restore_drill_drill.prom")
    assert v["emily_backup_restore_drill_success"] == 1
    assert v["emily_backup_restore_drill_rto_seconds"] == float(m[2])


def test_injected_corrupt_pack_fails_the_drill(restic_repo: dict[str, str], tmp_path: Path) -> None:
    """A repository whose data pack was damaged cannot be restored: the drill says so."""
    packs = [p for p in (Path(restic_repo["RESTIC_REPOSITORY"]) / "data").rglob("*") if p.is_file()]
    assert packs
    for pack in packs:
        pack.chmod(0o600)
        raw = bytearray(pack.read_bytes())
        for i in range(16, min(len(raw), 4096)):
            raw[i] ^= 0xFF
        pack.write_bytes(bytes(raw))
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    out = drill(restic_repo, "--scratch-dir", tmp_path / "scratch", "--textfile-dir", textfile)
    assert out.returncode == 1 and "restore-drill FAILED" in out.stderr
    assert (
        values(textfile / "emily_restore_drill_drill.prom")["emily_backup_restore_drill_success"]
        == 0
    )


def test_drill_refuses_a_non_empty_scratch_dir(restic_repo: dict[str, str], tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "keep.txt").write_text("do not overwrite")
    out = drill(restic_repo, "--scratch-dir", scratch)
    assert out.returncode == 2 and "not empty" in out.stderr
    assert (scratch / "keep.txt").read_text() == "do not overwrite"


def test_drill_needs_a_scratch_place(restic_repo: dict[str, str]) -> None:
    out = drill(restic_repo)
    assert out.returncode == 2 and "--scratch-dataset" in out.stderr
