"""``emily serve cognition``: the cognitive cycle on the bus and over HTTP.

Queryable ``emily/<node>/cognition/observe``, events on
``emily/<node>/events/workspace.broadcast`` and (rate-limited) the reflex's
``events/neural.spikes``, liveliness ``health/cognition``, and
``/v1/observe``, ``/metrics``, ``/healthz`` on port 8462 by default.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from contextlib import ExitStack

from emily.bus import BusConfig, encode, open_session
from emily.bus.endpoints import NEURAL_SPIKES, OBSERVE, WORKSPACE_BROADCAST
from emily.bus.health import Peers, announce
from emily.bus.keys import Keys
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest, WorkspaceBroadcast
from emily.cognition.clients import InferenceClient, MemoryClient
from emily.cognition.config import CognitionConfig
from emily.cognition.cycle import Cognition
from emily.cognition.dialogue.acts import LazyActs
from emily.cognition.http import build_app
from emily.cognition.learning import Learner
from emily.cognition.metrics import CognitionMetrics
from emily.cognition.perceive import Perceiver
from emily.cognition.reflex import Reflex
from emily.cognition.serving import serve_observe
from emily.cognition.trace import workspace_items
from emily.cognition.workspace import Broadcast
from emily.config import state_dir
from emily.errors import BusError
from emily.observe.http import HTTPLimits, HTTPServer, read_token
from emily.runtime import run_service

log = logging.getLogger(__name__)


class CognitionService:
    """The cycle served on a Zenoh session and (optionally) HTTP.

    Parameters
    ----------
    config, bus : settings. reflex : a trained reflex; loaded (or trained and cached
        under the state dir) when ``None``. http : serve ``/v1/observe`` and ``/metrics``.
    """

    def __init__(
        self,
        config: CognitionConfig,
        bus: BusConfig,
        reflex: Reflex | None = None,
        *,
        http: bool = True,
    ) -> None:
        self.config = config
        self.bus = bus
        # a bad token file is a configuration error: found before any session is opened,
        # so failing here leaves no Zenoh session (and its callback threads) behind
        api_key = read_token(config.api_key_file, "cognition") if http else None
        if reflex is None:
            reflex = Reflex.load_or_build(state_dir() / "cognition", embeddings=config.embeddings)
        self.session = open_session(bus)
        self.keys = bus.keys
        memory_keys = Keys(config.memory_node or bus.node)
        inference_keys = Keys(config.inference_node or bus.node)
        self.peers = Peers(
            self.session, self.keys, {"memory": memory_keys, "inference": inference_keys}
        )
        self.metrics = CognitionMetrics()
        self.cognition = Cognition(
            reflex,
            config,
            MemoryClient(self.session, memory_keys, self.peers),
            InferenceClient(self.session, inference_keys, self.peers),
            self.metrics,
            outbox=state_dir() / "cognition" / "episodes.sqlite",
            learner=Learner(state_dir() / "cognition" / "learning.json"),
            acts=LazyActs(reflex.embedder, state_dir() / "cognition"),
        )
        self._publisher = self.session.declare_publisher(WORKSPACE_BROADCAST.key(self.keys))
        self.cognition.subscribe(self._publish)
        self._spikes = self.session.declare_publisher(NEURAL_SPIKES.key(self.keys))
        self.cognition.spikes.publish = lambda event: self._spikes.put(encode(event))
        self.perceiver = Perceiver(
            self.session,
            Keys(config.perception_node or bus.node),
            config.perceive_timeout_s,
        )
        self.server = serve_observe(
            self.session, self.keys, self.cognition, perceive=self.perceiver.to_text
        )
        self.http: HTTPServer | None = None
        if http:
            app = build_app(
                self.answer,
                self.metrics.registry,
                self.metrics.bad.inc,
                api_key=api_key,
            )
            limits = HTTPLimits(max_body_bytes=config.http_max_body_bytes)
            self.http = HTTPServer(
                app, config.http_addr, config.http_port, name="cognition-http", limits=limits
            )
            if not self.http.wait_started():
                self.close()
                raise BusError(
                    f"cognition HTTP could not listen on {config.http_addr}:{config.http_port}; "
                    "is the port taken? Set EMILY_COGNITION__HTTP_PORT"
                )
        self.token = announce(self.session, self.keys, "cognition")

    def answer(self, request: ObserveRequest) -> tuple[ObserveReply, Callable[[], None]]:
        """One cycle up to its reply, and its deferred work (HTTP's handler: it sends the
        reply first); audio and images go through perception first."""
        return self.cognition.answer(self.perceiver.to_text(request))

    def _publish(self, cast: Broadcast) -> None:
        msg = WorkspaceBroadcast(
            cycle=cast.cycle, ignited=cast.ignited, items=workspace_items(cast)
        )
        self._publisher.put(encode(msg))

    def close(self) -> None:
        """Stop serving, flush episodes, close the session."""
        if getattr(self, "token", None) is not None:
            self.token.undeclare()  # type: ignore[no-untyped-call]
        self.server.close()
        if self.http is not None:
            self.http.close()
        self.cognition.close()
        self.peers.close()
        self.session.close()  # type: ignore[no-untyped-call]


def main(args: argparse.Namespace) -> int:
    """Run the service until SIGINT or SIGTERM; returns the exit code."""

    def start(stack: ExitStack) -> str:
        service = CognitionService(CognitionConfig.load(), BusConfig.load())
        stack.callback(service.close)
        service.cognition.warm_up()
        where = service.http.url if service.http else "off"
        return f"cognition serving on {OBSERVE.key(service.keys)}, HTTP {where}"

    return run_service(args, start)
