"""OpenAI's ``/v1/audio/transcriptions`` on the inference API, answered by perception.

The clip goes over the bus to ``perception/transcribe`` (faster-whisper); inference
only translates the multipart form into a :class:`TranscribeRequest` and the reply into
OpenAI's ``json``, ``text`` or ``verbose_json`` shape, so existing clients
(``openai.audio.transcriptions.create``) work unchanged. When no perception service
answers, the route says so with 503 and the usual error envelope.

Form fields: ``file`` (required: any container PyAV decodes, at most 8 MiB), ``model``
(any name: one transcriber is served, and the ``x-emily-model`` header names it),
``language`` (ISO 639-1), ``response_format`` and ``temperature`` (0 only: perception
decodes greedily). ``prompt``, word timestamps and streaming would change the output and
are refused with 400; other fields OpenAI accepts are ignored and named in the
``x-emily-ignored-fields`` header.
"""

from __future__ import annotations

import logging
import math
import zlib
from typing import Any

import zenoh
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from emily.bus import Keys
from emily.bus.endpoints import TRANSCRIBE
from emily.bus.rpc import RequestFailed
from emily.bus.schemas.perception import (
    MAX_MEDIA_BYTES,
    TranscribeReply,
    TranscribeRequest,
    b64_media,
)
from emily.errors import BusError
from emily.inference.errors import BadRequest, InferenceError, Unavailable

log = logging.getLogger(__name__)
FORMATS = ("json", "text", "verbose_json")
KNOWN = {"file", "model", "language", "response_format", "temperature", "prompt", "stream"}
IGNORABLE = {"timestamp_granularities[]", "timestamp_granularities", "chunking_strategy"}
MAX_FIELD_BYTES = 64 << 10


class TooLarge(InferenceError):
    """The uploaded clip is over the bus's media limit."""

    code = "payload_too_large"
    http_status = 413


class PerceptionClient:
    """Calls ``perception/transcribe`` on ``keys``' node over ``session`` (not owned).

    Parameters
    ----------
    session : open Zenoh session. keys : the node's key expressions.
    timeout_s : how long one transcription may take, in s.
    """

    def __init__(self, session: zenoh.Session, keys: Keys, timeout_s: float) -> None:
        self.session = session
        self.keys = keys
        self.timeout_s = timeout_s

    def transcribe(self, req: TranscribeRequest) -> TranscribeReply:
        """The transcript of ``req``'s clip.

        Raises
        ------
        BadRequest
            Perception refused the clip (not audio, empty, too long, corrupt).
        Unavailable
            No perception service answered, or it failed.
        """
        try:
            return TRANSCRIBE.call(self.session, self.keys, req, timeout_s=self.timeout_s)
        except RequestFailed as exc:
            if exc.reply.code == "bad_request":
                raise BadRequest(exc.reply.message) from exc
            raise Unavailable(f"perception failed: {exc}") from exc
        except BusError as exc:
            raise Unavailable(
                f"{exc}; audio transcription needs the perception service "
                "(`emily serve perception`, or `emily up`)"
            ) from exc


def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name}: send a text field, not a file")
    return value.strip()


def _temperature(raw: str | None) -> None:
    if raw is None or raw == "":
        return
    try:
        value = float(raw)
    except ValueError as exc:
        raise BadRequest(f"temperature: not a number: {raw[:40]!r}") from exc
    if not 0.0 <= value <= 1.0:
        raise BadRequest(f"temperature: must be in [0, 1], got {value:g}")
    if value != 0.0:
        raise BadRequest(
            "temperature: perception decodes greedily; send 0 or leave temperature out"
        )


def _check_refused(form: FormData) -> None:
    """400 for fields that would change the output in ways perception cannot honour."""
    if _field(form, "prompt"):
        raise BadRequest("prompt: not supported here (Whisper is not primed); leave it out")
    if (_field(form, "stream") or "false").lower() not in ("false", "0", ""):
        raise BadRequest("stream: streamed transcription is not supported; leave it out")
    for name in ("timestamp_granularities[]", "timestamp_granularities"):
        for value in form.getlist(name):
            if value not in ("segment", ""):
                raise BadRequest(f"{name}: only 'segment' timestamps exist here, not {value!r}")


async def _clip(form: FormData) -> bytes:
    upload = form.get("file")
    if upload is None:
        raise BadRequest("file: required: the audio clip as a multipart file field")
    if not isinstance(upload, UploadFile):
        raise BadRequest("file: send the clip as a file part (with a filename), not text")
    data = await upload.read(MAX_MEDIA_BYTES + 1)
    if len(data) > MAX_MEDIA_BYTES:
        raise TooLarge(f"file: the clip is over {MAX_MEDIA_BYTES:,} bytes; send a shorter clip")
    if not data:
        raise BadRequest("file: the clip is empty")
    return data


async def _read(form: FormData) -> tuple[str, str | None, bytes, list[str], list[str]]:
    """The response format, language, clip, ignored and unknown field names of ``form``."""
    fmt = _field(form, "response_format") or "json"
    if fmt not in FORMATS:
        raise BadRequest(
            f"response_format: {fmt[:40]!r} is not supported; use json, text or verbose_json"
        )
    _temperature(_field(form, "temperature"))
    _check_refused(form)
    if not _field(form, "model"):
        raise BadRequest("model: required (any name, e.g. whisper-1)")
    language = _field(form, "language") or None
    data = await _clip(form)
    ignored = sorted({k for k in form if k not in KNOWN} & IGNORABLE)
    unknown = sorted({k for k in form if k not in KNOWN | IGNORABLE})
    return fmt, language, data, ignored, unknown


def verbose(reply: TranscribeReply) -> dict[str, Any]:
    """OpenAI's ``verbose_json`` body for ``reply`` (times in s)."""
    segments = []
    for i, s in enumerate(reply.segments):
        raw = s.text.encode("utf-8")
        ratio = len(raw) / len(zlib.compress(raw)) if raw else 0.0
        segments.append(
            {
                "id": i,
                "seek": 0,
                "start": s.start_s,
                "end": s.end_s,
                "text": s.text,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": math.log(max(s.confidence, 1e-12)),
                "compression_ratio": ratio,
                "no_speech_prob": s.no_speech,
            }
        )
    return {
        "task": "transcribe",
        "language": reply.language,
        "duration": reply.duration_s,
        "text": reply.text,
        "segments": segments,
    }


def add_transcriptions(app: FastAPI, perception: PerceptionClient | None, auth: Any) -> None:
    """Add ``POST /v1/audio/transcriptions`` to ``app``; ``auth`` is its bearer check."""

    form_schema = {
        "type": "object",
        "required": ["file", "model"],
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "the clip, <= 8 MiB"},
            "model": {"type": "string", "description": "any name (one transcriber is served)"},
            "language": {"type": "string", "description": "ISO 639-1 code, e.g. en"},
            "response_format": {"type": "string", "enum": list(FORMATS), "default": "json"},
            "temperature": {"type": "number", "enum": [0], "default": 0},
        },
    }

    @app.post(
        "/v1/audio/transcriptions",
        dependencies=[Depends(auth)],
        summary="Speech to text (OpenAI shape), through the perception service",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"multipart/form-data": {"schema": form_schema}},
            }
        },
        responses={
            400: {"description": "a bad form or a clip perception cannot decode"},
            413: {"description": "the clip is over 8 MiB"},
            503: {"description": "no perception service answers"},
        },
    )
    async def transcriptions(request: Request) -> Response:
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise BadRequest("send a multipart/form-data body with a 'file' part")
        try:
            form = await request.form(max_files=1, max_fields=32, max_part_size=MAX_FIELD_BYTES)
        except InferenceError:
            raise
        except Exception as exc:  # python-multipart's and Starlette's parse errors
            raise BadRequest(f"the multipart body cannot be read: {exc}") from exc
        try:
            fmt, language, data, ignored, unknown = await _read(form)
        finally:
            await form.close()
        if unknown:
            raise BadRequest(f"unknown field(s) {', '.join(unknown)[:200]}: see /docs")
        if perception is None:
            raise Unavailable("this inference service has no bus session to reach perception")
        try:
            req = TranscribeRequest(audio=b64_media(data), language=language)
        except ValidationError as exc:
            why = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise BadRequest(why) from exc
        reply = await run_in_threadpool(perception.transcribe, req)
        headers = {"x-emily-model": reply.model}
        if ignored:
            log.info("accepted and ignored transcription fields: %s", ", ".join(ignored))
            headers["x-emily-ignored-fields"] = ", ".join(ignored)
        if fmt == "text":
            return PlainTextResponse(reply.text + "\n", headers=headers)
        body = verbose(reply) if fmt == "verbose_json" else {"text": reply.text}
        return JSONResponse(body, headers=headers)
