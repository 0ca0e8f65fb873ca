"""Tier 0: the spiking reflex that answers known patterns within a millisecond."""

from emily.cognition.reflex.cascade import Reflex
from emily.cognition.reflex.classifier import ReflexModel, ReflexResult, ReflexScores
from emily.cognition.reflex.features import HashedNgrams, MiniLMFeatures

__all__ = [
    "HashedNgrams",
    "MiniLMFeatures",
    "Reflex",
    "ReflexModel",
    "ReflexResult",
    "ReflexScores",
]
