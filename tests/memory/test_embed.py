"""The real MiniLM model: unit vectors of 384 dims, and meaning decides distance."""

from __future__ import annotations

import numpy as np
import pytest

from emily.memory.embed import Embedder

pytestmark = pytest.mark.slow


def test_similar_sentences_are_closer(embedder: Embedder) -> None:
    v = embedder.embed(
        [
            "The cat sleeps on the sofa",
            "A kitten naps on the couch",
            "Quarterly tax filing deadline",
        ]
    )
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > 0.5 > v[0] @ v[2]
    assert embedder.embed([]).shape == (0, 384)
