"""The Zenoh side: queryables ``inference/{generate,chat,cancel,info}`` (see the schemas).

A streaming request gets one :class:`GenerationChunk` reply per piece of text and a
final one with ``done=True``; a non-streaming request gets a single reply. Errors become
:class:`ErrorReply` with the code of the :class:`InferenceError` raised.
"""

from __future__ import annotations

from collections.abc import Iterator

import zenoh

from emily.bus.endpoints import CANCEL, CHAT, GENERATE, INFO
from emily.bus.keys import Keys
from emily.bus.messages import ErrorReply
from emily.bus.rpc import RequestFailed
from emily.bus.schemas.inference import (
    CancelReply,
    CancelRequest,
    ChatRequest,
    GenerateRequest,
    GenerationChunk,
    InferenceInfo,
    InfoRequest,
    Sampling,
    Usage,
)
from emily.inference.engine import Engine, Extras, Plan
from emily.inference.errors import Busy, InferenceError
from emily.inference.scheduler import Done, EventQueue, Failed, Piece, Scheduler
from emily.inference.structured import schema_grammar

_CODES = ("bad_request", "busy", "unavailable", "timeout", "not_found")


def error_reply(exc: InferenceError) -> RequestFailed:
    """The bus error for ``exc`` (``busy`` carries ``retry_after_s``)."""
    retry = exc.retry_after_s if isinstance(exc, Busy) else None
    code = exc.code if exc.code in _CODES else "internal"
    return RequestFailed(ErrorReply(code=code, message=str(exc), retry_after_s=retry))  # type: ignore[arg-type]


def _extras(req: Sampling) -> Extras | None:
    """The grammar that enforces ``req.json_schema`` (``None`` without one).

    Raises
    ------
    BadRequest
        If the schema cannot be expressed as a grammar.
    """
    if req.json_schema is None:
        return None
    return Extras(grammar=schema_grammar(req.json_schema))


class InferenceBus:
    """Serves the engine over Zenoh until :meth:`close`.

    Parameters
    ----------
    session : open Zenoh session.
    keys : key expressions of this node.
    engine, scheduler : the loaded model and its queue.
    """

    def __init__(
        self, session: zenoh.Session, keys: Keys, engine: Engine, scheduler: Scheduler
    ) -> None:
        self.engine = engine
        self.scheduler = scheduler
        # one rpc worker per request the scheduler holds (slots + queue) plus one, so
        # admission happens in the scheduler (which answers busy at once), never in the
        # rpc pool's own queue
        workers = scheduler.config.slots + scheduler.config.queue_size + 1
        self.servers = [
            GENERATE.serve(session, keys, self.generate, workers=workers),
            CHAT.serve(session, keys, self.chat, workers=workers),
            CANCEL.serve(session, keys, self.cancel, workers=2),
            INFO.serve(session, keys, self.info, workers=2),
        ]

    def generate(self, req: GenerateRequest) -> Iterator[GenerationChunk]:
        """Handler of ``inference/generate``."""
        try:
            self.engine.check_model(req.model)
            plan = self.engine.plan(req.prompt, req, extras=_extras(req))
        except InferenceError as exc:
            raise self._refuse(exc) from exc
        return self._run(plan, stream=req.stream, request_id=req.request_id)

    def chat(self, req: ChatRequest) -> Iterator[GenerationChunk]:
        """Handler of ``inference/chat``."""
        try:
            self.engine.check_model(req.model)
            # the rendered Prompt, not its text: message text never becomes control tokens
            plan = self.engine.plan(self.engine.chat_prompt(req.messages), req, extras=_extras(req))
        except InferenceError as exc:
            raise self._refuse(exc) from exc
        return self._run(plan, stream=req.stream, request_id=req.request_id)

    def _refuse(self, exc: InferenceError) -> RequestFailed:
        """Count a refused request and turn it into its bus error."""
        if exc.code in ("bad_request", "not_found"):
            self.scheduler.metrics.rejections.labels(exc.code).inc()
        return error_reply(exc)

    def _run(self, plan: Plan, stream: bool, request_id: str | None) -> Iterator[GenerationChunk]:
        events = EventQueue()
        try:
            job = self.scheduler.submit(plan, events, request_id=request_id, api="zenoh")
        except InferenceError as exc:
            raise error_reply(exc) from exc
        return self._replies(job.id, events, stream)

    def _replies(self, job_id: str, events: EventQueue, stream: bool) -> Iterator[GenerationChunk]:
        name = self.engine.name
        texts: list[str] = []
        index = 0
        for event in events:
            if isinstance(event, Piece):
                if stream:
                    yield GenerationChunk(
                        request_id=job_id, model=name, index=index, text=event.text
                    )
                    index += 1
                else:
                    texts.append(event.text)
            elif isinstance(event, Failed):
                raise error_reply(event.error)
            elif isinstance(event, Done):
                yield GenerationChunk(
                    request_id=job_id,
                    model=name,
                    index=index,
                    text="" if stream else "".join(texts),
                    done=True,
                    finish_reason=event.finish_reason,
                    usage=Usage(
                        prompt_tokens=event.prompt_tokens, completion_tokens=event.completion_tokens
                    ),
                    ttft_ms=event.ttft_ms,
                    latency_ms=event.latency_ms,
                )

    def cancel(self, req: CancelRequest) -> CancelReply:
        """Handler of ``inference/cancel``."""
        return CancelReply(
            request_id=req.request_id, cancelled=self.scheduler.cancel(req.request_id)
        )

    def info(self, _req: InfoRequest) -> InferenceInfo:
        """Handler of ``inference/info``: what really runs the model."""
        e, cfg = self.engine, self.engine.config
        return InferenceInfo(
            model=e.name,
            model_path=str(e.path),
            backend=e.backend.backend,
            device=e.backend.device,
            gpu_offload_supported=e.backend.gpu_offload_supported,
            n_gpu_layers=cfg.n_gpu_layers,
            n_ctx=cfg.n_ctx,
            n_threads=cfg.threads,
            chat_format=e.chat_format,
            queue_size=cfg.queue_size,
            queue_depth=self.scheduler.depth,
        )

    def close(self) -> None:
        """Undeclare the queryables and wait for in-flight replies."""
        for s in self.servers:
            s.close()
