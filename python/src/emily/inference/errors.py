"""Typed errors of the inference service; each maps to a bus error code and an HTTP status."""

from __future__ import annotations

from emily.errors import EmilyError


class InferenceError(EmilyError):
    """Base of the inference service's errors."""

    code = "internal"
    http_status = 500


class BadRequest(InferenceError):
    """The request cannot be served as given (oversize prompt, invalid sampling)."""

    code = "bad_request"
    http_status = 400


class ModelNotFound(InferenceError):
    """The request names a model this service does not serve."""

    code = "not_found"
    http_status = 404


class Busy(InferenceError):
    """The request queue is full; retry after :attr:`retry_after_s` seconds."""

    code = "busy"
    http_status = 429

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QueueTimeout(InferenceError):
    """The request waited longer than the configured queue timeout."""

    code = "timeout"
    http_status = 503


class Unavailable(InferenceError):
    """The service is shutting down or its model is not loaded."""

    code = "unavailable"
    http_status = 503


class ModelLoadError(InferenceError):
    """The GGUF file could not be found or loaded."""


class DownloadError(InferenceError):
    """A model download failed (network, HTTP status, or a checksum mismatch)."""
