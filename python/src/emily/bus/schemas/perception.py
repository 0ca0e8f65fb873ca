"""Contract of the perception service: ``perception/transcribe`` and ``perception/read``.

Declared as :data:`emily.bus.endpoints.TRANSCRIBE` and :data:`emily.bus.endpoints.READ`.
Media travels base64-encoded inside the JSON message, at most :data:`MAX_MEDIA_BYTES`
decoded bytes (Zenoh fragments a payload of a few megabytes on its own). Example::

    reply = TRANSCRIBE.call(session, keys, TranscribeRequest(audio=b64), timeout_s=60)
    print(reply.text, reply.duration_s, reply.model)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Annotated

from pydantic import Field, field_validator

from emily.bus.messages import Message

MAX_MEDIA_BYTES = 8 * 1024 * 1024
"""Largest audio clip or image on the bus, in decoded bytes (8 MiB)."""
MAX_MEDIA_B64 = 4 * ((MAX_MEDIA_BYTES + 2) // 3)
"""Length of :data:`MAX_MEDIA_BYTES` bytes in base64 (characters)."""
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


def b64_media(data: bytes) -> str:
    """``data`` as the base64 text a request carries; raises ``ValueError`` if oversize."""
    if len(data) > MAX_MEDIA_BYTES:
        raise ValueError(
            f"media is {len(data)} bytes; the bus takes at most {MAX_MEDIA_BYTES} "
            "(trim the clip or shrink the image)"
        )
    return base64.b64encode(data).decode("ascii")


def media_bytes(b64: str) -> bytes:
    """Decode a request's base64 media (already validated by the schema)."""
    return base64.b64decode(b64, validate=True)


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as 64 lowercase hex digits: the media's content address."""
    return hashlib.sha256(data).hexdigest()


def check_b64(v: str) -> str:
    """``v`` unchanged, or :class:`ValueError` if it is not non-empty base64."""
    if not v:
        raise ValueError("media is empty: give the bytes of an audio clip or an image")
    try:
        raw = base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"media is not valid base64: {exc}") from exc
    if not raw:
        raise ValueError("media is empty: give the bytes of an audio clip or an image")
    return v


class TranscribeRequest(Message):
    """Speech to text.

    Attributes
    ----------
    audio : the clip's bytes (any container PyAV decodes: WAV, FLAC, OGG, MP3, ...) in
        base64, 1 byte to 8 MiB decoded.
    language : ISO 639-1 code, or ``None`` to detect it (an English-only model is ``en``).
    keep : keep the clip in the service's content-addressed media store when speech was
        heard (what cognition asks for the media behind an episode).
    """

    audio: str = Field(max_length=MAX_MEDIA_B64)
    language: str | None = Field(default=None, min_length=2, max_length=8)
    keep: bool = False

    @field_validator("audio")
    @classmethod
    def _audio(cls, v: str) -> str:
        return check_b64(v)


class Segment(Message):
    """One decoded stretch of speech: times in s from the clip's start, its text and the
    model's confidence (``exp`` of the mean token log-probability)."""

    start_s: float = Field(ge=0.0)
    end_s: float = Field(ge=0.0)
    text: str
    confidence: Probability
    no_speech: Probability


class TranscribeReply(Message):
    """The transcript of one clip.

    Attributes
    ----------
    text : the segments' text joined. segments : each decoded stretch.
    language, language_probability : the spoken (or given) language and its probability.
    duration_s : the clip's length (s). speech_s : the part VAD kept as speech (s).
    confidence : duration-weighted mean of the segments' confidences.
    elapsed_ms : decoding plus transcription time (ms).
    model : the model's name (``whisper-tiny.en``). sha256 : the clip's content address.
    kept : the clip is in the media store under ``sha256``.
    """

    text: str
    segments: list[Segment]
    language: str
    language_probability: Probability
    duration_s: float = Field(ge=0.0)
    speech_s: float = Field(ge=0.0)
    confidence: Probability
    elapsed_ms: float = Field(ge=0.0)
    model: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    kept: bool = False


class ReadRequest(Message):
    """Text in an image: ``image`` is a PNG, JPEG, WebP, GIF, BMP or TIFF in base64;
    ``keep`` keeps it in the media store when text was read (see
    :class:`TranscribeRequest`)."""

    image: str = Field(max_length=MAX_MEDIA_B64)
    keep: bool = False

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        return check_b64(v)


class Word(Message):
    """One recognised word: its box in pixels from the top-left corner and confidence."""

    text: str
    left: int = Field(ge=0)
    top: int = Field(ge=0)
    width: int = Field(ge=0)
    height: int = Field(ge=0)
    confidence: Probability


class ReadReply(Message):
    """The text read from one image.

    Attributes
    ----------
    text : the recognised lines joined with newlines. words : every word with its box.
    confidence : mean word confidence (0 when nothing was read).
    width, height : the image's size (px). elapsed_ms : OCR time (ms).
    model : the engine and language (``tesseract-5.3.0-eng``). sha256 : the image's
        content address. kept : the image is in the media store under ``sha256``.
    """

    text: str
    words: list[Word]
    confidence: Probability
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    elapsed_ms: float = Field(ge=0.0)
    model: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    kept: bool = False


class CaptionRequest(Message):
    """An image to describe (as :class:`ReadRequest`); served only where a vision model
    is configured, ``unavailable`` elsewhere."""

    image: str = Field(max_length=MAX_MEDIA_B64)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        return check_b64(v)


class CaptionReply(Message):
    """One sentence about the image, the vision model's name, the time taken (ms) and the
    image's content address."""

    text: str
    elapsed_ms: float = Field(ge=0.0)
    model: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
