"""Typed errors of the neural building blocks; each message says what to change."""

from emily.errors import EmilyError


class NeuralConfigError(EmilyError):
    """A neural component was configured outside its valid range (e.g. alpha ≤ 0)."""


class NeuralInputError(EmilyError):
    """A tensor handed to a neural component has the wrong shape, dtype or values."""
