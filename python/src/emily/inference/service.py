"""The ``emily serve inference`` process: model, queue, Zenoh queryables, HTTP, metrics.

Start-up order: load the model (and log the backend that really runs it), start the
queue worker, declare the queryables and the liveliness token, then open HTTP. Shutdown
stops the queue first (cancelling the running request), so it never waits for a long
generation, then closes HTTP and the bus.
"""

from __future__ import annotations

import argparse
import logging
from contextlib import ExitStack

from emily.bus import BusConfig, open_session
from emily.bus.health import announce
from emily.inference.bus_api import InferenceBus
from emily.inference.config import InferenceConfig
from emily.inference.engine import Engine
from emily.inference.errors import Unavailable
from emily.inference.http_api import create_app
from emily.inference.metrics import InferenceMetrics
from emily.inference.models import selected
from emily.inference.scheduler import Scheduler
from emily.inference.store import embedded_model
from emily.inference.transcriptions import PerceptionClient
from emily.observe import MetricsServer, start_metrics_server
from emily.observe.http import HTTPServer, read_token
from emily.runtime import run_service

log = logging.getLogger(__name__)


class InferenceService:
    """Everything the process runs; :meth:`close` stops it all.

    Parameters
    ----------
    config : ``[inference]`` settings.
    bus : ``[bus]`` settings.
    """

    def __init__(self, config: InferenceConfig, bus: BusConfig) -> None:
        api_key = read_token(config.api_key_file, "inference")
        # the configured file, else the one `emily model use` selected, else the embedded
        self.engine = Engine(config, config.model_path or selected() or embedded_model())
        log.info("inference backend: %s", self.engine.backend.describe())
        self.metrics = InferenceMetrics()
        self.metrics.set_backend(self.engine.backend, self.engine.name, config.n_gpu_layers)
        self.scheduler = Scheduler(self.engine, config, self.metrics)
        try:
            self.session = open_session(bus)
        except Exception:
            self.scheduler.close()
            raise
        self.keys = bus.keys
        self.bus = InferenceBus(self.session, bus.keys, self.engine, self.scheduler)
        self.token = announce(self.session, bus.keys, "inference")
        self.http: HTTPServer | None = None
        self.metrics_server: MetricsServer | None = None
        if config.http_port:
            perception = PerceptionClient(self.session, bus.keys, config.request_timeout_s)
            app = create_app(
                self.engine, self.scheduler, self.metrics, api_key=api_key, perception=perception
            )
            self.http = HTTPServer(app, config.http_host, config.http_port, name="inference-http")
            if not self.http.wait_started():
                self.close()
                raise Unavailable(
                    f"HTTP could not listen on {config.http_host}:{config.http_port}; "
                    "is the port in use? Set [inference] http_port"
                )
        elif config.metrics_port:
            self.metrics_server = start_metrics_server(
                self.metrics.registry, config.metrics_port, config.http_host
            )

    def close(self) -> None:
        """Stop announcing, stop the queue (the running request is cancelled, waiting ones
        get ``unavailable``), then HTTP, the queryables and the session, so that shutdown
        never waits for a long generation."""
        self.token.undeclare()  # type: ignore[no-untyped-call]
        self.scheduler.close()
        if self.http is not None:
            self.http.close()
        if self.metrics_server is not None:
            self.metrics_server.close()
        self.bus.close()
        self.session.close()  # type: ignore[no-untyped-call]


def main(args: argparse.Namespace) -> int:
    """Run the service until SIGINT or SIGTERM; returns the exit code."""

    def start(stack: ExitStack) -> str:
        service = InferenceService(InferenceConfig.load(), BusConfig.load())
        stack.callback(service.close)
        where = service.http.url if service.http else "no HTTP"
        node = service.keys.node
        return f"inference serving {service.engine.name} on emily/{node}/inference/*, {where}"

    return run_service(args, start)
