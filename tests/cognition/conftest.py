"""Session-wide trained reflex models (training takes seconds; share it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emily.cognition.reflex import MiniLMFeatures, Reflex, ReflexModel
from emily.cognition.reflex.features import HashedNgrams
from emily.cognition.reflex.train import TrainConfig


@pytest.fixture(scope="session")
def reflex_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory where trained reflex models are cached for the whole session."""
    return tmp_path_factory.mktemp("reflex-cache")


@pytest.fixture(scope="session")
def fast_reflex(reflex_cache: Path) -> ReflexModel:
    """The n-gram spiking reflex, trained once per session."""
    return ReflexModel.load_or_build(reflex_cache, TrainConfig(), HashedNgrams(), "ngrams")


@pytest.fixture(scope="session")
def embedder() -> MiniLMFeatures:
    """The real MiniLM model, loaded offline once per session."""
    return MiniLMFeatures()


@pytest.fixture(scope="session")
def cascade(reflex_cache: Path, fast_reflex: ReflexModel, embedder: MiniLMFeatures) -> Reflex:
    """Both reflex stages (n-grams, then MiniLM)."""
    deep = ReflexModel.load_or_build(reflex_cache, TrainConfig(), embedder, "minilm")
    return Reflex(fast_reflex, deep, embedder)
