"""Settings of the ``[inference]`` config section (TOML or ``EMILY_INFERENCE__*``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from emily.config import load_section
from emily.errors import ConfigError


def default_threads() -> int:
    """Cores this process may run on (``sched_getaffinity``), else ``os.cpu_count()``.

    llama-cpp-python's own default is half the cores, which halves generation speed on
    a machine that is not busy with anything else.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class InferenceConfig:
    """Model, runtime, sampling, queue and HTTP settings of the inference service.

    Attributes
    ----------
    model_path : GGUF file; ``None`` uses the embedded Gemma 3 270M Q4_K_M, assembled
        once into ``<state dir>/models``.
    model_name : name clients use (``model`` field); empty means the file's stem.
    n_ctx : context length, in tokens.
    n_gpu_layers : layers offloaded to the GPU; ``-1`` offloads all, ``0`` is CPU only.
    n_threads : generation threads; ``0`` means every core this process may use.
    n_threads_batch : prompt-processing threads; ``0`` means the same as ``n_threads``.
    n_batch : prompt-processing batch, in tokens.
    cpu_amx : use llama.cpp's AMX kernels on a build that has them (Intel Xeon of the 4th
        generation and later). Off by default: they crash on batched decodes (see
        :mod:`emily.llamacpp`); off, such a build keeps the weights in plain CPU
        buffers, and a build without AMX kernels is not affected.
    chat_format : ``auto`` (the GGUF's template if it has one, else few-shot),
        ``template`` (require one) or ``fewshot``.
    chat_template_file : a Jinja chat template used instead of the GGUF's own.
    max_tokens, temperature, top_p, top_k, min_p, repeat_penalty : sampling defaults.
    slots : requests decoded together in one batch (each has ``n_ctx`` of its own).
    prefix_cache : keep the KV cache of the last system prompt and start requests that
        share it from there (outputs are identical; prompt processing is skipped).
    queue_size : requests that may wait while all slots run; more are rejected as busy.
    queue_timeout_s : longest wait in the queue before a ``timeout`` error, in s.
    request_timeout_s : deadline of a whole request (queue plus generation), in s.
    http_host, http_port : where the OpenAI-compatible API listens; port 0 disables it.
    api_key_file : file holding a bearer token required on ``/v1/*`` (a sops secret on
        the host); ``None`` means no token.
    metrics_port : ``/metrics`` server when HTTP is disabled; 0 means none.
    """

    model_path: Path | None = None
    model_name: str = ""
    n_ctx: int = 4096
    n_gpu_layers: int = 0
    n_threads: int = 0
    n_threads_batch: int = 0
    n_batch: int = 512
    cpu_amx: bool = False
    chat_format: Literal["auto", "template", "fewshot"] = "auto"
    chat_template_file: Path | None = None
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    slots: int = 4
    prefix_cache: bool = False
    queue_size: int = 8
    queue_timeout_s: float = 30.0
    request_timeout_s: float = 300.0
    http_host: str = "127.0.0.1"
    http_port: int = 8461
    api_key_file: Path | None = None
    metrics_port: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.n_ctx >= 16, "n_ctx must be at least 16 tokens"),
            (self.n_gpu_layers >= -1, "n_gpu_layers must be -1 (all), 0 (CPU) or a count"),
            (self.n_threads >= 0 and self.n_threads_batch >= 0, "thread counts must be >= 0"),
            (self.n_batch >= 1, "n_batch must be >= 1"),
            (1 <= self.max_tokens <= self.n_ctx, "max_tokens must be in 1..n_ctx"),
            (0.0 <= self.temperature <= 2.0, "temperature must be in 0..2"),
            (0.0 < self.top_p <= 1.0, "top_p must be in (0, 1]"),
            (self.top_k >= 0, "top_k must be >= 0"),
            (0.0 <= self.min_p <= 1.0, "min_p must be in 0..1"),
            (0.0 < self.repeat_penalty <= 2.0, "repeat_penalty must be in (0, 2]"),
            (1 <= self.slots <= 64, "slots must be in 1..64"),
            (self.queue_size >= 0, "queue_size must be >= 0"),
            (self.queue_timeout_s > 0 and self.request_timeout_s > 0, "timeouts must be > 0"),
            (0 <= self.http_port <= 65535 and 0 <= self.metrics_port <= 65535, "bad port"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"[inference] {message}; fix it in the config file or env")

    @property
    def threads(self) -> int:
        """Effective generation threads."""
        return self.n_threads or default_threads()

    @property
    def threads_batch(self) -> int:
        """Effective prompt-processing threads."""
        return self.n_threads_batch or self.threads

    @classmethod
    def load(cls) -> InferenceConfig:
        """Read ``[inference]`` from the config file and ``EMILY_INFERENCE__*`` variables."""
        return load_section(cls, "inference")
