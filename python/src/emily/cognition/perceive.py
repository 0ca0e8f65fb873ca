"""Audio and images as observations: the perception service turns them into text.

An :class:`~emily.bus.schemas.cognition.ObserveRequest` that carries ``audio`` or an
``image`` is sent to ``perception/transcribe`` or ``perception/read`` over the bus
before its cycle starts; the transcript (or the text read) becomes the request's text,
so the rest of the cycle, recall and the stored episode treat it like something said.
The episode's context records where the text came from:

``modality`` (``audio`` or ``image``), ``media_sha256`` (the clip's or image's content
address), ``perception_model`` (``whisper-tiny.en``, ``tesseract-5.3.0-eng``),
``perception_confidence`` (0..1), ``caption_model`` where a vision model described an
image (its sentence follows the text read, as ``[image: ...]``), ``media_kept`` (the
media is in perception's content-addressed store under its sha256), and
``media_seconds`` for audio.

Media that perception refuses (not audio, corrupt, too long, ...) and media in which
nothing was heard or read are ``bad_request`` replies: no cycle runs and nothing is
stored.
"""

from __future__ import annotations

import zenoh

from emily.bus.endpoints import CAPTION, READ, TRANSCRIBE
from emily.bus.keys import Keys
from emily.bus.messages import ErrorReply
from emily.bus.rpc import RequestFailed
from emily.bus.schemas.cognition import MAX_TEXT_CHARS, ObserveRequest
from emily.bus.schemas.context import MEDIA_KEY, ContextValue
from emily.bus.schemas.perception import (
    CaptionReply,
    CaptionRequest,
    ReadRequest,
    TranscribeRequest,
)
from emily.errors import BusError


def _clip(text: str) -> str:
    """``text`` cut to :data:`MAX_TEXT_CHARS` at a word boundary."""
    if len(text) <= MAX_TEXT_CHARS:
        return text
    cut = text[:MAX_TEXT_CHARS]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut


class Perceiver:
    """Calls the perception service for cognition (over the bus only).

    Parameters
    ----------
    session : open Zenoh session. keys : the perception service's node.
    timeout_s : deadline of one transcription or read (s).
    """

    def __init__(self, session: zenoh.Session, keys: Keys, timeout_s: float) -> None:
        self.session = session
        self.keys = keys
        self.timeout_s = timeout_s

    def _caption(self, image: str) -> CaptionReply | None:
        """The vision model's sentence about ``image``, or ``None`` where no vision model
        is configured (``unavailable``) or it has nothing to say."""
        try:
            reply = CAPTION.call(
                self.session, self.keys, CaptionRequest(image=image), timeout_s=self.timeout_s
            )
        except RequestFailed as exc:
            if exc.reply.code == "unavailable":
                return None
            raise
        return reply if reply.text.strip() else None

    def to_text(self, request: ObserveRequest) -> ObserveRequest:
        """``request`` unchanged if it is text, else its percept as a text observation.

        Raises
        ------
        RequestFailed
            ``bad_request`` for media perception refuses or in which nothing was heard
            or read; ``unavailable`` when no perception service answers.
        """
        if request.audio is None and request.image is None:
            return request
        try:
            if request.audio is not None:
                heard = TRANSCRIBE.call(
                    self.session,
                    self.keys,
                    TranscribeRequest(audio=request.audio, keep=True),
                    timeout_s=self.timeout_s,
                )
                text, sha, model, conf = heard.text, heard.sha256, heard.model, heard.confidence
                extra: dict[str, ContextValue] = {
                    "media_seconds": round(heard.duration_s, 3),
                    "media_kept": heard.kept,
                }
            else:
                assert request.image is not None
                seen = READ.call(
                    self.session,
                    self.keys,
                    ReadRequest(image=request.image, keep=True),
                    timeout_s=self.timeout_s,
                )
                text, sha, model, conf = seen.text, seen.sha256, seen.model, seen.confidence
                extra = {"media_kept": seen.kept}
                caption = self._caption(request.image)
                if caption is not None:
                    text = f"{text}\n[image: {caption.text}]" if text else caption.text
                    extra["caption_model"] = caption.model
        except RequestFailed:
            raise
        except BusError as exc:
            raise RequestFailed(
                ErrorReply(
                    code="unavailable",
                    message=f"{exc}; audio and images need the perception service "
                    "(`emily serve perception`)",
                )
            ) from exc
        text = _clip(" ".join(text.split()))
        if not text:
            what = (
                "no speech was heard in the clip"
                if request.audio
                else "no text was read in the image"
            )
            raise RequestFailed(ErrorReply(code="bad_request", message=f"{what}; nothing stored"))
        context = dict(request.context)
        context.update(
            {MEDIA_KEY: sha},
            modality=request.modality,
            perception_model=model,
            perception_confidence=round(conf, 4),
            **extra,
        )
        try:
            return ObserveRequest(
                text=text,
                context=context,
                allow_llm=request.allow_llm,
                max_tokens=request.max_tokens,
                # the text twin belongs to the same user and conversation as the media
                user=request.user,
                session=request.session,
            )
        except ValueError as exc:  # the provenance keys took the context over its bound
            raise RequestFailed(ErrorReply(code="bad_request", message=str(exc))) from exc
