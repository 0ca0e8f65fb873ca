"""Memory-test fixtures: one MiniLM model per test session (slow to load)."""

from __future__ import annotations

import pytest

from emily.memory.embed import Embedder


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real MiniLM-L6 model, loaded offline once per session."""
    return Embedder(device="cpu")
