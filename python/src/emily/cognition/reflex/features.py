"""Features for the reflex: hashed character n-grams (cheap) or MiniLM embeddings.

Hashed n-grams need no model and cost microseconds; MiniLM costs milliseconds per
sentence on a CPU. ``bench/cognition_reflex.py`` measures both.
"""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from emily.embed import Embedder

_THREADS_LOCK = threading.Lock()
_threads_state = {"depth": 0, "before": 0}


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads while any such block is active.

    Small models on a shared 2-core machine run several times faster on one thread than
    on threads that fight other processes for the cores (measured: MiniLM embedding of
    473 sentences 24 s -> 3 s, reflex training 66 s -> 6 s under load). Blocks may nest
    and run on several threads at once; the lock guards only the counter, never the
    body, and the previous setting comes back when the last block ends.
    """
    import torch

    with _THREADS_LOCK:
        if _threads_state["depth"] == 0:
            _threads_state["before"] = torch.get_num_threads()
            torch.set_num_threads(n)
        _threads_state["depth"] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _threads_state["depth"] -= 1
            if _threads_state["depth"] == 0:
                torch.set_num_threads(_threads_state["before"])


_PUNCT = re.compile(r"[^\w' ]+")
_SPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """Lower-case, drop punctuation except apostrophes, collapse whitespace."""
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


@dataclass(frozen=True)
class HashedNgrams:
    """Binary bag of hashed character n-grams and words.

    Attributes
    ----------
    dim : feature vector length (hash buckets).
    n_min, n_max : character n-gram lengths, over the text padded with spaces.
    """

    dim: int = 2048
    n_min: int = 2
    n_max: int = 4

    def indices(self, text: str) -> NDArray[np.int64]:
        """Sorted unique active bucket indices of ``text`` (a sparse binary vector)."""
        t = f" {normalise_text(text)} "
        grams = {
            t[i : i + n] for n in range(self.n_min, self.n_max + 1) for i in range(len(t) - n + 1)
        }
        grams.update("w:" + w for w in t.split())
        idx = {zlib.crc32(g.encode()) % self.dim for g in grams}
        return np.fromiter(sorted(idx), dtype=np.int64, count=len(idx))

    def dense(self, texts: list[str]) -> NDArray[np.float32]:
        """Feature matrix ``[B, dim]`` with values in {0, 1}."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row, self.indices(text)] = 1.0
        return out


class MiniLMFeatures:
    """MiniLM-L6 sentence embeddings (384-d, unit norm) split into ON/OFF channels.

    The embeddings come from :class:`emily.embed.Embedder`, the one embedder that
    memory uses too, so recall vectors and stored vectors match (its ``[embed]
    precision`` setting included). ``dense`` returns ``[B, 768]``: ``max(e, 0)`` then
    ``max(-e, 0)``, scaled by ``scale``. ``cache_tag`` names the embedding precision, so
    a reflex trained on one precision's features is never loaded for the other.
    """

    def __init__(self, scale: float = 8.0, embedder: Embedder | None = None) -> None:
        self.embedder = embedder if embedder is not None else Embedder(device="cpu")
        self.scale = scale
        self.dim = 768
        self.cache_tag = self.embedder.precision

    def embed(self, texts: list[str]) -> NDArray[np.float32]:
        """Unit-norm embeddings ``[B, 384]``."""
        with torch_threads(1):
            return self.embedder.embed(texts)

    def from_embedding(self, e: NDArray[np.float32]) -> NDArray[np.float32]:
        """ON/OFF features ``[..., 768]`` of embeddings ``[..., 384]``."""
        on_off = np.concatenate([np.maximum(e, 0), np.maximum(-e, 0)], axis=-1)
        return (on_off * self.scale).astype(np.float32)

    def dense(self, texts: list[str]) -> NDArray[np.float32]:
        """ON/OFF features ``[B, 768]`` (non-negative currents)."""
        return self.from_embedding(self.embed(texts))
