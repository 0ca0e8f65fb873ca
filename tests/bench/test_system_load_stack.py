"""bench/system_load_stack.py: how the load tells a service that still runs from one that
died."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.bench.helpers import bench_module


def test_running_tells_a_live_process_from_a_zombie_and_a_gone_one() -> None:
    running = bench_module("system_load_stack").running
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert running(child.pid)
        child.kill()
        deadline = time.monotonic() + 30
        while running(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # killed but not reaped: a zombie
        assert not running(child.pid)
    finally:
        child.wait()
    assert not running(child.pid)
