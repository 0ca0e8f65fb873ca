"""``POST /v1/embeddings``: the MiniLM embedder every service shares (:mod:`emily.embed`).

The embedder is loaded on the first request (a few seconds and a few hundred MB that a
service which never embeds does not pay) and runs off the event loop. Vectors are the
embedder's own: 384 float32 values of unit length, as ``float`` lists or ``base64`` of
little-endian float32, as OpenAI's API sends them.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from emily.embed import Embedder
from emily.inference.errors import ModelNotFound

MODEL = "all-MiniLM-L6-v2"
MAX_INPUTS = 2048


class EmbeddingBody(BaseModel):
    """``POST /v1/embeddings``: one text or a list of texts."""

    model_config = ConfigDict(extra="forbid")
    input: str | list[str] = Field(description="text, or up to 2048 texts")
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _texts(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and not 1 <= len(v) <= MAX_INPUTS:
            raise ValueError(f"send 1..{MAX_INPUTS} texts (token arrays are not accepted)")
        return v

    @field_validator("dimensions")
    @classmethod
    def _dims(cls, v: int | None) -> int | None:
        if v is not None and v != Embedder.dim:
            raise ValueError(f"this model's vectors have {Embedder.dim} dimensions, not {v}")
        return v

    def texts(self) -> list[str]:
        """The inputs as a list."""
        return [self.input] if isinstance(self.input, str) else list(self.input)


class Embeddings:
    """The shared embedder behind the HTTP API, loaded on first use."""

    def __init__(self) -> None:
        self._embedder: Embedder | None = None
        self._lock = threading.Lock()

    def _get(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = Embedder()
            return self._embedder

    @staticmethod
    def check_model(name: str | None) -> None:
        """Raise :class:`ModelNotFound` for a model other than the MiniLM embedder."""
        if name is not None and name.lower() not in (
            MODEL.lower(),
            f"sentence-transformers/{MODEL}".lower(),
        ):
            raise ModelNotFound(
                f"embedding model {name!r} is not served here; use {MODEL!r} (see /v1/models)"
            )

    def _run(self, texts: list[str]) -> tuple[np.ndarray[Any, Any], int]:
        embedder = self._get()
        vectors = embedder.embed(texts)
        tokenizer: Any = embedder._tokenizer  # the embedder's own: usage in its tokens
        ids = tokenizer(texts, truncation=True, max_length=embedder._max_tokens)["input_ids"]
        return vectors, sum(len(x) for x in ids)

    async def respond(self, body: EmbeddingBody) -> dict[str, Any]:
        """The OpenAI-shaped response for ``body``."""
        self.check_model(body.model)
        vectors, tokens = await asyncio.to_thread(self._run, body.texts())
        data = []
        for i, v in enumerate(vectors):
            value: Any = (
                base64.b64encode(v.astype("<f4").tobytes()).decode()
                if body.encoding_format == "base64"
                else [float(x) for x in v]
            )
            data.append({"object": "embedding", "index": i, "embedding": value})
        return {
            "object": "list",
            "data": data,
            "model": MODEL,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
