"""Serving ``/metrics`` for Prometheus from each service process.

Each service registers its collectors on its own :class:`CollectorRegistry`, so tests and
several services in one process never collide on metric names. :func:`service_registry`
makes such a registry with the standard process metrics on it (resident memory, CPU
seconds, open and maximum file descriptors, start time), which Prometheus's own
exporters name ``process_*``, so one dashboard panel fits every service.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

_WITH_PROCESS: weakref.WeakSet[CollectorRegistry] = weakref.WeakSet()
_LOCK = threading.Lock()


def with_process_metrics(registry: CollectorRegistry) -> CollectorRegistry:
    """``registry``, with this process's ``process_*`` metrics on it (added once)."""
    with _LOCK:
        if registry not in _WITH_PROCESS:
            ProcessCollector(registry=registry)
            _WITH_PROCESS.add(registry)
    return registry


def service_registry() -> CollectorRegistry:
    """A new registry for one service, with the process metrics already on it."""
    return with_process_metrics(CollectorRegistry())


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint; :meth:`close` stops it."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        """TCP port actually bound (useful when started on port 0)."""
        return int(self.server.server_port)

    def close(self) -> None:
        """Stop serving and join the thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(
    registry: CollectorRegistry, port: int = 0, addr: str = "127.0.0.1"
) -> MetricsServer:
    """Serve ``registry`` (with the process metrics added) on ``http://addr:port/metrics``;
    port 0 picks a free port."""
    server, thread = start_http_server(port, addr=addr, registry=with_process_metrics(registry))
    return MetricsServer(server=server, thread=thread)
