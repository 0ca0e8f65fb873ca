from __future__ import annotations

import os
import urllib.request

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from emily.observe import service_registry, start_metrics_server, with_process_metrics


def scrape(port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    return {
        s.name: s.value
        for f in text_string_to_metric_families(body.decode())
        for s in f.samples
        if not s.labels
    }


def test_metrics_endpoint_serves_the_registry() -> None:
    registry = CollectorRegistry()
    hits = Counter("emily_test_hits", "test counter", ["tier"], registry=registry)
    hits.labels(tier="L1").inc(3)
    server = start_metrics_server(registry, port=0)
    try:
        assert server.port > 0
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read()
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        sample = families["emily_test_hits"].samples[0]
        assert sample.labels == {"tier": "L1"} and sample.value == 3
    finally:
        server.close()


def test_process_metrics_are_this_process() -> None:
    registry = service_registry()
    assert with_process_metrics(registry) is registry  # added once: no duplicate error
    server = start_metrics_server(registry, port=0)
    try:
        got = scrape(server.port)
    finally:
        server.close()
    with open(f"/proc/{os.getpid()}/statm") as fh:
        rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert abs(got["process_resident_memory_bytes"] - rss) < 0.5 * rss
    assert got["process_cpu_seconds_total"] > 0
    assert 3 <= got["process_open_fds"] <= len(os.listdir("/proc/self/fd")) + 5
    assert got["process_max_fds"] >= got["process_open_fds"]
