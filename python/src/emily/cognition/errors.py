"""Typed errors of the cognition service; each message says what to do."""

from emily.errors import EmilyError


class CognitionError(EmilyError):
    """Base class of cognition errors."""


class ModelError(CognitionError):
    """A generative model (A, B, C, D, E, policies) has inconsistent shapes or values."""


class ReflexDataError(CognitionError):
    """The reflex-intent data file is missing, malformed or lacks a split."""
