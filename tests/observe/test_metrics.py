from __future__ import annotations

import urllib.request

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from emily.observe import start_metrics_server


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
