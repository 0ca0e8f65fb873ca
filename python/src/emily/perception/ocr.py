"""Text in images: Tesseract's LSTM engine, run as a subprocess on a PNG piped to stdin.

Pillow checks the image first (a known format, decodable, within the pixel budget) and
re-encodes it losslessly as grayscale PNG, so Tesseract only ever sees one well-formed
format. Tesseract's TSV output gives every word with its box and confidence; words are
joined into lines by Tesseract's own block, paragraph and line numbers.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import time
import warnings
from functools import cached_property

from PIL import Image, UnidentifiedImageError

from emily.bus.schemas.perception import ReadReply, Word, sha256_hex
from emily.perception.config import PerceptionConfig
from emily.perception.errors import MediaError, ModelError

FORMATS = frozenset({"PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"})
"""Image formats :class:`Reader` accepts."""
_WORD_LEVEL = "5"


def load_image(data: bytes, max_pixels: int) -> Image.Image:
    """Open and fully decode an image, as grayscale.

    Raises
    ------
    MediaError
        ``data`` is not an image in :data:`FORMATS`, is truncated or corrupt, or has
        more than ``max_pixels`` pixels.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "unknown"
            if fmt not in FORMATS:
                raise MediaError(
                    f"images are read as {', '.join(sorted(FORMATS))}; this one is {fmt}"
                )
            if img.width * img.height > max_pixels:
                raise MediaError(
                    f"the image is {img.width}x{img.height} px; at most {max_pixels} pixels "
                    "are read (shrink it, or raise [perception] max_pixels)"
                )
            img.load()
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(
            f"the image has too many pixels ({exc}); at most {max_pixels} are read"
        ) from exc
    except UnidentifiedImageError as exc:
        raise MediaError(
            "not an image (no known image format): send audio to perception/transcribe (--audio)"
        ) from exc
    except Exception as exc:  # untrusted bytes: whatever a Pillow decoder raises
        raise MediaError(f"the image is corrupt or truncated: {exc}") from exc
    return img.convert("L")


class Reader:
    """Tesseract on one language model (``eng`` by default)."""

    def __init__(self, config: PerceptionConfig) -> None:
        self.config = config
        exe = shutil.which(config.tesseract)
        if exe is None:
            raise ModelError(
                f"Tesseract ({config.tesseract!r}) is not on PATH: install tesseract-ocr and "
                f"tesseract-ocr-{config.ocr_lang}, or set [perception] tesseract"
            )
        self.exe = exe
        # the first line is a header naming the tessdata directory
        langs = [line.strip() for line in self._run(["--list-langs"], b"").splitlines()[1:]]
        if config.ocr_lang not in langs:
            raise ModelError(
                f"Tesseract has no {config.ocr_lang!r} model (it has {langs}): install "
                f"tesseract-ocr-{config.ocr_lang}"
            )

    def _run(self, args: list[str], stdin: bytes) -> str:
        proc = subprocess.run([self.exe, *args], input=stdin, capture_output=True, check=False)
        if proc.returncode != 0:
            raise MediaError(f"Tesseract failed: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout.decode("utf-8", errors="replace")

    @cached_property
    def name(self) -> str:
        """Engine, version and language as provenance records them (``tesseract-5.3.0-eng``)."""
        first = self._run(["--version"], b"").splitlines() or ["tesseract"]
        version = first[0].split()[-1] if first[0].split() else "unknown"
        return f"tesseract-{version}-{self.config.ocr_lang}"

    def read(self, data: bytes) -> ReadReply:
        """Read the text in one image.

        Parameters
        ----------
        data : the file's bytes (see :data:`FORMATS`).

        Raises
        ------
        MediaError
            See :func:`load_image`.
        """
        t0 = time.perf_counter()
        img = load_image(data, self.config.max_pixels)
        png = io.BytesIO()
        img.save(png, format="PNG")
        tsv = self._run(["stdin", "stdout", "-l", self.config.ocr_lang, "tsv"], png.getvalue())
        words: list[Word] = []
        lines: dict[tuple[str, str, str, str], list[str]] = {}
        for row in tsv.splitlines()[1:]:
            cols = row.split("\t")
            if len(cols) < 12 or cols[0] != _WORD_LEVEL or not cols[11].strip():
                continue
            conf = float(cols[10])
            if conf < 0:
                continue
            text = cols[11].strip()
            left, top, width, height = (int(c) for c in cols[6:10])
            words.append(
                Word(
                    text=text,
                    left=left,
                    top=top,
                    width=width,
                    height=height,
                    confidence=min(1.0, conf / 100.0),
                )
            )
            lines.setdefault((cols[1], cols[2], cols[3], cols[4]), []).append(text)
        return ReadReply(
            text="\n".join(" ".join(ws) for ws in lines.values()),
            words=words,
            confidence=sum(w.confidence for w in words) / len(words) if words else 0.0,
            width=img.width,
            height=img.height,
            elapsed_ms=(time.perf_counter() - t0) * 1000.0,
            model=self.name,
            sha256=sha256_hex(data),
        )
