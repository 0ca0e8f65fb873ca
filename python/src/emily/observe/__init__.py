"""Observability at the bottom layer: Prometheus metrics and logging."""

from emily.observe.log import setup_logging
from emily.observe.metrics import (
    MetricsServer,
    service_registry,
    start_metrics_server,
    with_process_metrics,
)

__all__ = [
    "MetricsServer",
    "service_registry",
    "setup_logging",
    "start_metrics_server",
    "with_process_metrics",
]
