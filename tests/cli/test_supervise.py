"""The supervisor's own mechanics with real child processes (no services): log files
fed through the pipe and rotated, and a restart on request that is not a crash."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from emily.cli.supervise import RestartPolicy, Supervisor, alive
from emily.observe.log import LogConfig

CHILD = (
    "import sys, time\n"
    "print('started', flush=True)\n"
    "for i in range(int(sys.argv[1])): print(f'{i:04d} ' + 'x' * 95, flush=True)\n"
    "time.sleep(120)\n"
)


def supervisor(tmp_path: Path, lines: int, cfg: LogConfig) -> Supervisor:
    said: list[str] = []
    return Supervisor(
        ["svc"],
        {},
        tmp_path / "logs",
        RestartPolicy(backoff_s=0.1, restart_limit=1),
        said.append,
        cfg,
        command=lambda _name: [sys.executable, "-c", CHILD, str(lines)],
    )


def wait_for(cond: Callable[[], bool], wait_s: float = 60.0) -> None:
    deadline = time.monotonic() + wait_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_services_output_is_logged_and_rotated(tmp_path: Path) -> None:
    sup = supervisor(tmp_path, 300, LogConfig(max_bytes=8192, backup_count=2))
    sup.start("svc")
    logs = tmp_path / "logs"
    try:
        wait_for(lambda: "0299 " in (logs / "svc.log").read_text())
    finally:
        sup.stop(grace_s=5)
    assert sorted(p.name for p in logs.iterdir()) == ["svc.log", "svc.log.1", "svc.log.2"]
    assert all(p.stat().st_size <= 8192 for p in logs.iterdir())
    assert (logs / "svc.log").read_text().splitlines()[-1].startswith("0299 ")


def test_a_requested_restart_is_not_a_crash(tmp_path: Path) -> None:
    sup = supervisor(tmp_path, 0, LogConfig())
    log = tmp_path / "logs" / "svc.log"
    sup.start("svc")
    try:
        first = sup.pids()["svc"]
        for n in range(1, 4):  # three in a row: a crash loop would be given up sooner
            wait_for(lambda n=n: log.read_text().count("started") == n)
            sup.restart("svc")
        wait_for(lambda: log.read_text().count("started") == 4)
        second = sup.pids()["svc"]
        assert second != first and not alive(first) and alive(second)
        assert sup.check() == [] and sup.services["svc"].exits == []
        assert not sup.services["svc"].given_up
    finally:
        sup.stop(grace_s=5)
