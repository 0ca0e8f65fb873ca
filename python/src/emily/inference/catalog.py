"""Known instruct models: a name for a Hugging Face file pinned to a commit, its SHA-256
and its size (``data/catalog.json``).

``emily model pull NAME`` resolves a catalog name to ``repo/file@revision`` and checks
the download against the entry's size and SHA-256, so the user types a short name and
still gets exactly the bytes the entry names. The file is validated when it is loaded:
a malformed entry is an error that names it, never a silently skipped model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from emily.inference.errors import DownloadError

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FILE = re.compile(r"^(?:[A-Za-z0-9_.+-]+/)*[A-Za-z0-9_.+-]+\.gguf$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_FIELDS = {"name", "repo", "file", "revision", "sha256", "size_bytes", "license", "summary"}


@dataclass(frozen=True)
class CatalogEntry:
    """One pinned model file.

    Attributes
    ----------
    name : the short name users type (lower case).
    repo : the Hugging Face repository, ``org/name``.
    file : the GGUF's path in the repository.
    revision : the repository commit the file is pinned to (40 hex digits).
    sha256 : the file's SHA-256 (64 hex digits).
    size_bytes : the file's size in bytes.
    license : its SPDX licence name.
    summary : one line for ``emily model catalog``.
    """

    name: str
    repo: str
    file: str
    revision: str
    sha256: str
    size_bytes: int
    license: str
    summary: str

    @property
    def spec(self) -> str:
        """The pull spec: ``org/repo/file.gguf@revision``."""
        return f"{self.repo}/{self.file}@{self.revision}"

    @property
    def stem(self) -> str:
        """The local model name once pulled (``emily model use`` takes it, or :attr:`name`)."""
        return Path(self.file).stem


def _entry(raw: Any, where: str) -> CatalogEntry:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: an entry must be an object, got {type(raw).__name__}")
    missing, extra = _FIELDS - raw.keys(), raw.keys() - _FIELDS
    if missing or extra:
        raise ValueError(f"{where}: missing {sorted(missing)}, unknown {sorted(extra)}")
    checks = [
        ("name", _NAME),
        ("repo", _REPO),
        ("file", _FILE),
        ("revision", _COMMIT),
        ("sha256", _SHA),
    ]
    for key, pattern in checks:
        value = raw[key]
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f"{where}: {key} {value!r} does not match {pattern.pattern}")
    if any(part in ("", ".", "..") for part in raw["file"].split("/")):
        raise ValueError(f"{where}: file {raw['file']!r} must not climb out of the repository")
    size = raw["size_bytes"]
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ValueError(f"{where}: size_bytes must be a positive integer, got {size!r}")
    for key in ("license", "summary"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise ValueError(f"{where}: {key} must be a non-empty string")
    return CatalogEntry(**raw)


def load_catalog(path: Path | None = None) -> tuple[CatalogEntry, ...]:
    """The catalog at ``path`` (default: the packaged ``data/catalog.json``), validated.

    Raises
    ------
    ValueError
        When the file is not JSON, an entry is malformed, or two entries share a name.
    """
    if path is None:
        text = resources.files("emily.inference").joinpath("data/catalog.json").read_text("utf-8")
        where = "catalog.json"
    else:
        text, where = path.read_text(encoding="utf-8"), str(path)
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{where}: not JSON ({exc})") from exc
    models = doc.get("models") if isinstance(doc, dict) else None
    if not isinstance(models, list) or not models:
        raise ValueError(f"{where}: needs a non-empty list under 'models'")
    entries = tuple(_entry(m, f"{where} models[{i}]") for i, m in enumerate(models))
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ValueError(
            f"{where}: duplicate names {sorted(n for n in names if names.count(n) > 1)}"
        )
    return entries


def lookup(name: str, catalog: tuple[CatalogEntry, ...] | None = None) -> CatalogEntry | None:
    """The entry called ``name`` (case-insensitive), or ``None``."""
    key = name.strip().lower()
    return next((e for e in (catalog or load_catalog()) if e.name == key), None)


def check_size(entry: CatalogEntry, path: Path) -> None:
    """Raise :class:`DownloadError` unless ``path`` has the entry's size (cheap, before hashing)."""
    got = path.stat().st_size
    if got != entry.size_bytes:
        raise DownloadError(
            f"{entry.name}: the file is {got:,} bytes, the catalog says {entry.size_bytes:,}; "
            "nothing was linked"
        )
