"""Observability at the bottom layer: Prometheus metrics and logging."""

from emily.observe.log import setup_logging
from emily.observe.metrics import MetricsServer, start_metrics_server

__all__ = ["MetricsServer", "setup_logging", "start_metrics_server"]
