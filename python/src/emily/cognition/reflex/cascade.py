"""The reflex tier as a cascade: hashed n-grams first, then MiniLM features.

The fast stage answers in well under a millisecond and fires only when it is sure.
When it does not fire, the embedding stage reuses the MiniLM embedding that the cycle
computes anyway for memory recall (one embedding, two uses) and fires above its own
calibrated threshold. Neither stage waits for memory or the language model.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from emily.cognition.reflex.classifier import ReflexModel, ReflexResult
from emily.cognition.reflex.features import HashedNgrams, MiniLMFeatures
from emily.cognition.reflex.train import TrainConfig

#: Training of each stage. The embedding stage's threshold is calibrated for a precision
#: of 0.97 rather than 0.95: a reflex that fires on the wrong utterance costs more than
#: one that hands it on to the slower tiers, so this stage trades recall for fewer false
#: fires (bench/cognition_reflex.py prints both on the held-out set).
FAST_CONFIG = TrainConfig()
DEEP_CONFIG = TrainConfig(target_precision=0.97)


class Reflex:
    """Fast (n-gram) and embedding (MiniLM) spiking reflexes.

    Parameters
    ----------
    fast : the n-gram model. deep : the MiniLM model, or ``None`` to run the fast
        stage alone. embedder : the MiniLM model that produced ``deep``'s features.
    """

    def __init__(
        self,
        fast: ReflexModel,
        deep: ReflexModel | None = None,
        embedder: MiniLMFeatures | None = None,
    ) -> None:
        self.fast = fast
        self.deep = deep
        self.embedder = embedder

    @classmethod
    def load_or_build(cls, cache_dir: Path, *, embeddings: bool = True) -> Reflex:
        """Load (or train and cache) both stages; ``embeddings=False`` skips MiniLM."""
        fast = ReflexModel.load_or_build(cache_dir, FAST_CONFIG, HashedNgrams(), "ngrams")
        if not embeddings:
            return cls(fast)
        embedder = MiniLMFeatures()
        deep = ReflexModel.load_or_build(cache_dir, DEEP_CONFIG, embedder, "minilm")
        return cls(fast, deep, embedder)

    @staticmethod
    def _shifted(model: ReflexModel, shift: float) -> float:
        return min(0.995, max(0.05, model.threshold + shift))

    def decide_fast(self, text: str, shift: float = 0.0) -> ReflexResult:
        """The n-gram stage; ``shift`` moves the calibrated threshold (allostasis)."""
        return self.fast.decide(text, self._shifted(self.fast, shift))

    def embed(self, text: str) -> NDArray[np.float32] | None:
        """The unit-norm MiniLM embedding ``[384]`` of ``text``, or ``None`` without MiniLM."""
        return None if self.embedder is None else self.embedder.embed([text])[0]

    def decide_deep(
        self, text: str, embedding: NDArray[np.float32], shift: float = 0.0
    ) -> ReflexResult | None:
        """The embedding stage on a precomputed embedding ``[384]``; ``None`` without it."""
        if self.deep is None or self.embedder is None:
            return None
        feats = self.embedder.from_embedding(embedding)
        return self.deep.decide(text, self._shifted(self.deep, shift), features=feats)

    #: STDP consolidates only decisions that fired by less than this margin over the
    #: threshold: patterns already far above it need no reinforcement, and adapting on
    #: every decision lets the weights drift (measured over 10k cycles in the benchmark).
    ADAPT_MARGIN = 0.1

    def wants_adaptation(self, result: ReflexResult) -> bool:
        """Whether :meth:`adapt` would change anything for this decision (cheap check)."""
        return result.fired and result.confidence < result.threshold + self.ADAPT_MARGIN

    def adapt(self, text: str, result: ReflexResult) -> float:
        """STDP on the fast stage after it fired close to its threshold; returns mean |dW|."""
        if self.wants_adaptation(result) and result.intent == self.fast.decide(text).intent:
            return self.fast.adapt(text)
        return 0.0

    @staticmethod
    def merge(fast: ReflexResult, deep: ReflexResult | None) -> ReflexResult:
        """The deciding result: the fast one if it fired, else the deep one (latency and
        operation counts summed, since both stages ran)."""
        if fast.fired or deep is None:
            return fast
        return replace(
            deep,
            latency_ms=fast.latency_ms + deep.latency_ms,
            counts=fast.counts.merge(deep.counts),
            cpu_ms=fast.cpu_ms + deep.cpu_ms,
        )
