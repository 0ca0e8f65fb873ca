"""Errors of the perception service; each says what was wrong with the media."""

from __future__ import annotations

from emily.errors import EmilyError


class MediaError(EmilyError):
    """The media is not what the endpoint takes: not audio or not an image, empty, too
    long, too large or corrupt. Served as a ``bad_request`` reply."""


class ModelError(EmilyError):
    """A model or engine (the Whisper directory, the Tesseract executable) is missing."""
