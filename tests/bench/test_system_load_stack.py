"""bench/system_load_stack.py: how the load tells a service that still runs from one that
died, and reads cognition's outbox."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from emily.observe import start_metrics_server
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


def test_cognition_s_outbox_is_read_from_its_metrics() -> None:
    outbox = bench_module("system_load_stack").cognition_outbox
    registry = CollectorRegistry()
    server = start_metrics_server(registry)
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        with pytest.raises(RuntimeError, match="no emily_cognition_pending_episodes"):
            outbox(url)
        Gauge("emily_cognition_pending_episodes", "pending", registry=registry).set(12)
        done = Counter("emily_cognition_episodes", "episodes", ["outcome"], registry=registry)
        done.labels("stored").inc(40)
        done.labels("refused").inc(2)
        assert outbox(url) == (12, {"stored": 40.0, "refused": 2.0})
    finally:
        server.close()
