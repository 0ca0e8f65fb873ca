"""Model management: Hugging Face pulls, the record of pulled files, the selected model.

``pull_any`` takes either an ``http(s)://`` URL (downloaded by :func:`store.pull`) or a
Hugging Face file spelled ``org/repo/file.gguf`` (``org/repo/dir/file.gguf`` for a file
in a folder, ``...@revision`` for a branch, tag or commit), fetched with
``huggingface_hub`` into its own cache (resumable, shared with other tools; ``HF_TOKEN``
is used for gated repositories) and linked into ``<state dir>/models``. A SHA-256 is
checked whenever one is given, and recorded either way in ``models/models.json``. A
name from the catalog (:mod:`emily.inference.catalog`, e.g. ``qwen2.5-1.5b-instruct``)
stands for its pinned file, and its size and SHA-256 are always checked.

``emily model use NAME`` writes the selection to ``models/selected``; the inference
service loads it on its next start when ``[inference] model_path`` is not set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emily.inference.catalog import CatalogEntry, check_size, lookup
from emily.inference.errors import DownloadError, ModelLoadError
from emily.inference.store import file_name, models_dir, pull

log = logging.getLogger(__name__)
_HUB = re.compile(
    r"^(?P<org>[A-Za-z0-9][A-Za-z0-9_.-]*)/(?P<repo>[A-Za-z0-9][A-Za-z0-9_.-]*)/"
    r"(?P<file>(?:[A-Za-z0-9_.+-]+/)*[A-Za-z0-9_.+-]+\.gguf)(?:@(?P<rev>[A-Za-z0-9_./-]+))?$"
)
RECORD = "models.json"
SELECTED = "selected"


@dataclass(frozen=True)
class HubFile:
    """A file in a Hugging Face repository."""

    repo_id: str
    filename: str
    revision: str | None = None

    @property
    def spec(self) -> str:
        """How the user wrote it: ``org/repo/file.gguf[@rev]``."""
        return f"{self.repo_id}/{self.filename}" + (f"@{self.revision}" if self.revision else "")


def parse_spec(spec: str) -> HubFile | str:
    """A :class:`HubFile` for ``org/repo/file.gguf[@rev]``, the URL itself for ``http(s)://``.

    Raises
    ------
    DownloadError
        For anything else, with the two accepted forms in the message.
    """
    if re.match(r"^https?://", spec):
        return spec
    m = _HUB.match(spec)
    if m is None or ".." in spec.split("@")[0].split("/"):
        raise DownloadError(
            f"cannot pull {spec!r}: give an http(s):// URL of a .gguf file or a Hugging Face "
            "file as ORG/REPO/FILE.gguf (optionally @REVISION)"
        )
    return HubFile(f"{m['org']}/{m['repo']}", m["file"], m["rev"])


def sha256_file(path: Path) -> str:
    """SHA-256 of ``path`` as 64 hex digits."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def read_record(directory: Path | None = None) -> dict[str, dict[str, Any]]:
    """``models.json``: file name -> ``{"source", "sha256", "verified"}`` (empty if none)."""
    path = (directory or models_dir()) / RECORD
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path} cannot be read ({exc}); fix or remove it") from exc
    return data if isinstance(data, dict) else {}


def _write_record(record: dict[str, dict[str, Any]], directory: Path) -> None:
    path = directory / RECORD
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def pull_hub(
    hub: HubFile,
    sha256: str | None,
    *,
    directory: Path | None = None,
    cache_dir: Path | None = None,
    endpoint: str | None = None,
    name: str | None = None,
    pinned: CatalogEntry | None = None,
) -> tuple[Path, str]:
    """Fetch ``hub`` through ``huggingface_hub`` and link it into the models directory.

    Returns the linked path and the file's SHA-256. ``endpoint`` is the hub's address
    (``HF_ENDPOINT`` when ``None``); ``cache_dir`` its cache (``HF_HUB_CACHE`` when ``None``).
    ``pinned``: the catalog entry ``hub`` came from; its size is checked before hashing.
    """
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    if constants.HF_HUB_OFFLINE:
        raise DownloadError(
            f"{hub.spec}: HF_HUB_OFFLINE is set in this process, so the hub cannot be asked; "
            "unset it to pull"
        )
    root = directory or models_dir()
    target = root / file_name(hub.filename, name)
    try:
        cached = Path(
            hf_hub_download(
                hub.repo_id,
                hub.filename,
                revision=hub.revision,
                cache_dir=cache_dir or os.environ.get("HF_HUB_CACHE") or None,
                endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None,
                token=os.environ.get("HF_TOKEN") or None,
            )
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise DownloadError(
            f"{hub.spec}: {exc}; check the name, your network, and HF_TOKEN for gated repositories"
        ) from exc
    if pinned is not None:
        check_size(pinned, cached)
    got = sha256_file(cached)
    if sha256 is not None and got != sha256:
        raise DownloadError(
            f"checksum mismatch for {hub.spec}: expected {sha256}, got {got}; the cached copy "
            "was kept in the Hugging Face cache, nothing was linked"
        )
    with cached.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise DownloadError(f"{hub.spec} is not a GGUF file (bad magic)")
    if target.is_symlink() or target.exists():
        if target.resolve() != cached.resolve():
            raise DownloadError(f"{target} exists and is another file; remove it or pick --name")
    else:
        target.symlink_to(cached.resolve())
    return target, got


def pull_any(
    spec: str,
    sha256: str | None = None,
    *,
    name: str | None = None,
    directory: Path | None = None,
    progress: bool = True,
    cache_dir: Path | None = None,
    endpoint: str | None = None,
    catalog: tuple[CatalogEntry, ...] | None = None,
) -> Path:
    """Pull a catalog name, a URL or a Hugging Face file (see the module docstring) and
    record it. ``catalog`` replaces the packaged catalog (tests)."""
    expected = sha256.strip().lower() if sha256 else None
    if expected is not None and not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise DownloadError(f"--sha256 must be 64 hex digits, got {sha256!r}")
    root = directory or models_dir()
    root.mkdir(parents=True, exist_ok=True)
    pinned = lookup(spec, catalog) if "/" not in spec else None
    if pinned is not None:
        if expected is not None and expected != pinned.sha256:
            raise DownloadError(
                f"--sha256 {expected} differs from the catalog's {pinned.sha256} for "
                f"{pinned.name}; drop --sha256, or pull {pinned.spec} to use your own"
            )
        expected, spec = pinned.sha256, pinned.spec
    source = parse_spec(spec)
    if isinstance(source, HubFile):
        path, got = pull_hub(
            source,
            expected,
            directory=root,
            cache_dir=cache_dir,
            endpoint=endpoint,
            name=name,
            pinned=pinned,
        )
    else:
        path = pull(source, expected, name=name, directory=root, progress=progress)
        got = expected or sha256_file(path)
    record = read_record(root)
    record[path.name] = {"source": spec, "sha256": got, "verified": expected is not None}
    _write_record(record, root)
    log.info("pulled %s from %s (sha256 %s)", path, spec, got)
    return path


def find(name: str, directory: Path | None = None) -> Path:
    """The model file called ``name`` (with or without ``.gguf``, or a catalog name) in the
    models directory."""
    root = directory or models_dir()
    pinned = lookup(name) if "/" not in name else None
    if pinned is not None and not (root / file_name(f"{name}.gguf")).is_file():
        name = pinned.stem
    file = name if name.endswith(".gguf") else f"{name}.gguf"
    path = root / file_name(file)
    if not path.is_file():
        have = ", ".join(sorted(p.stem for p in root.glob("*.gguf"))) or "none"
        raise ModelLoadError(f"no model {name!r} in {root} (have: {have}); pull it first")
    return path


def select(name: str, directory: Path | None = None) -> Path:
    """Make ``name`` the model the inference service loads on its next start."""
    root = directory or models_dir()
    path = find(name, root)
    (root / SELECTED).write_text(path.name + "\n", encoding="utf-8")
    return path


def selected(directory: Path | None = None) -> Path | None:
    """The model chosen with :func:`select`, or ``None`` (a vanished file is ``None`` too)."""
    root = directory or models_dir()
    try:
        chosen = (root / SELECTED).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    path = root / chosen
    if not chosen or not path.is_file():
        log.warning("the selected model %r is gone; using the default", chosen)
        return None
    return path


def remove(name: str, directory: Path | None = None) -> Path:
    """Delete a pulled model (a link into the Hugging Face cache: the link only)."""
    root = directory or models_dir()
    path = find(name, root)
    if selected(root) == path:
        (root / SELECTED).unlink()
    path.unlink()
    record = read_record(root)
    if record.pop(path.name, None) is not None:
        _write_record(record, root)
    return path
