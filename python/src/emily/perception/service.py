"""``emily serve perception``: speech and text in images, on the bus.

Queryables ``emily/<node>/perception/transcribe``, ``.../read`` and ``.../caption`` (a
vision model's one-sentence description, where ``[perception] caption_model`` is set),
liveliness ``health/perception``, ``/metrics`` on port 9463 by default. Media a request
asks to ``keep`` goes to the content-addressed :class:`~emily.perception.media.MediaStore`;
it leaves the store when memory forgets the last episode naming it
(:class:`~emily.perception.forgetting.MediaJanitor`).

Metrics: ``emily_perception_seconds{op}`` (time per request, s),
``emily_perception_requests_total{op,outcome}`` (``ok``, ``bad_request``, ``internal``)
and ``emily_perception_media_seconds_total`` (audio transcribed, s).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, TypeVar

import zenoh
from prometheus_client import Counter, Histogram

from emily.bus import BusConfig, Keys, open_session
from emily.bus.endpoints import CAPTION, READ, TRANSCRIBE
from emily.bus.health import announce
from emily.bus.messages import ErrorReply, Message
from emily.bus.rpc import RequestFailed, Server
from emily.bus.schemas.perception import (
    CaptionReply,
    CaptionRequest,
    ReadReply,
    ReadRequest,
    TranscribeReply,
    TranscribeRequest,
    media_bytes,
)
from emily.observe import start_metrics_server
from emily.observe.metrics import service_registry
from emily.perception.caption import Captioner
from emily.perception.config import PerceptionConfig
from emily.perception.errors import MediaError
from emily.perception.forgetting import MediaJanitor
from emily.perception.media import MediaStore
from emily.perception.ocr import Reader
from emily.perception.speech import Transcriber
from emily.runtime import run_service

log = logging.getLogger(__name__)
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
R = TypeVar("R", TranscribeReply, ReadReply)
BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class PerceptionMetrics:
    """The service's own registry (see the module docstring)."""

    def __init__(self) -> None:
        self.registry = service_registry()
        self.seconds = Histogram(
            "emily_perception_seconds",
            "Time to serve one perception request (s)",
            ["op"],
            buckets=BUCKETS_S,
            registry=self.registry,
        )
        self.requests = Counter(
            "emily_perception_requests_total",
            "Perception requests by outcome",
            ["op", "outcome"],
            registry=self.registry,
        )
        self.audio = Counter(
            "emily_perception_media_seconds_total",
            "Audio transcribed (s)",
            registry=self.registry,
        )


class PerceptionService:
    """The transcriber and the reader behind their two queryables.

    Parameters
    ----------
    config : settings. session : open Zenoh session (not owned). keys : the node's keys.
    """

    def __init__(self, config: PerceptionConfig, session: zenoh.Session, keys: Keys) -> None:
        self.config = config
        self.metrics = PerceptionMetrics()
        self.transcriber = Transcriber(config)
        self.reader = Reader(config)
        self.media = MediaStore(config.media_root, config.media_max_bytes)
        self.captioner = Captioner(config) if config.caption_model else None
        self.servers: list[Server] = [
            TRANSCRIBE.serve(session, keys, self.handle_transcribe, workers=config.workers),
            READ.serve(session, keys, self.handle_read, workers=config.workers),
            CAPTION.serve(session, keys, self.handle_caption, workers=1),
        ]
        self.janitor = MediaJanitor(self.media, session, keys)
        self.token: Any = announce(session, keys, "perception")

    def _serve(self, op: str, fn: Callable[[], Resp]) -> Resp:
        t0 = time.perf_counter()
        try:
            reply = fn()
        except MediaError as exc:
            self.metrics.requests.labels(op, "bad_request").inc()
            raise RequestFailed(ErrorReply(code="bad_request", message=str(exc))) from exc
        except Exception:
            self.metrics.requests.labels(op, "internal").inc()
            raise
        self.metrics.requests.labels(op, "ok").inc()
        self.metrics.seconds.labels(op).observe(time.perf_counter() - t0)
        return reply

    def _keep(self, reply: R, data: bytes, keep: bool) -> R:
        """``reply``, marked ``kept`` once its media is in the store (only media in which
        something was heard or read becomes an episode)."""
        if not (keep and reply.text):
            return reply
        return reply.model_copy(update={"kept": self.media.put(reply.sha256, data)})

    def handle_transcribe(self, req: TranscribeRequest) -> TranscribeReply:
        """``perception/transcribe``: a bad clip is a ``bad_request`` reply."""
        data = media_bytes(req.audio)
        reply = self._serve("transcribe", lambda: self.transcriber.transcribe(data, req.language))
        self.metrics.audio.inc(reply.duration_s)
        return self._keep(reply, data, req.keep)

    def handle_read(self, req: ReadRequest) -> ReadReply:
        """``perception/read``: a bad image is a ``bad_request`` reply."""
        data = media_bytes(req.image)
        return self._keep(self._serve("read", lambda: self.reader.read(data)), data, req.keep)

    def handle_caption(self, req: CaptionRequest) -> CaptionReply:
        """``perception/caption``: ``unavailable`` without a configured vision model."""
        if self.captioner is None:
            raise RequestFailed(
                ErrorReply(
                    code="unavailable",
                    message="no vision model here: set [perception] caption_model and "
                    "caption_projector to a GGUF and its mmproj",
                )
            )
        captioner = self.captioner
        return self._serve("caption", lambda: captioner.caption(media_bytes(req.image)))

    def warm_up(self) -> None:
        """Run both models once on a blank input, so the first request is not the slow one."""
        import io
        import wave

        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16_000)
            w.writeframes(b"\x00\x00" * 16_000)
        self.transcriber.transcribe(buf.getvalue())
        _ = self.reader.name

    def close(self) -> None:
        """Stop serving and withdraw the liveliness token."""
        for server in self.servers:
            server.close()
        self.janitor.close()
        self.token.undeclare()


def main(args: argparse.Namespace) -> int:
    """Run the perception service until SIGTERM/SIGINT; returns the exit code."""

    def start(stack: ExitStack) -> str:
        cfg = PerceptionConfig.load()
        bus = BusConfig.load()
        session = open_session(bus)
        stack.callback(session.close)
        service = PerceptionService(cfg, session, bus.keys)
        stack.callback(service.close)
        http = start_metrics_server(service.metrics.registry, cfg.metrics_port, cfg.metrics_addr)
        stack.callback(http.close)
        service.warm_up()
        return (
            f"perception serving on {TRANSCRIBE.key(bus.keys)} and {READ.key(bus.keys)} "
            f"({service.transcriber.name}, {service.reader.name}), "
            f"/metrics on {cfg.metrics_addr}:{http.port}"
        )

    return run_service(args, start)
