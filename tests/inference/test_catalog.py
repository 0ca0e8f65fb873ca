"""The model catalog: the packaged file validates, malformed entries are refused with
their place named, and ``emily model pull NAME`` fetches the pinned file and refuses one
whose size or SHA-256 differs (against a hub served on loopback)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest

from emily.cli.main import main
from emily.inference.catalog import CatalogEntry, load_catalog, lookup
from emily.inference.errors import DownloadError
from emily.inference.models import HubFile, find, parse_spec, pull_any, read_record
from tests.inference.test_models import Hub, hub  # noqa: F401 (the fixture)

REPO = Path(__file__).resolve().parents[2]


def test_the_packaged_catalog_validates_and_every_entry_is_a_pinned_hub_file() -> None:
    entries = load_catalog()
    assert entries
    for e in entries:
        source = parse_spec(e.spec)
        assert isinstance(source, HubFile)
        assert source.revision == e.revision and len(e.revision) == 40
        assert lookup(e.name.upper()) == e


def test_the_readme_names_a_laptop_model_with_its_checksum_and_the_commands() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    named = [e for e in load_catalog() if f"emily model pull {e.name}" in readme]
    assert named, "the README shows `emily model pull NAME` for a catalog model"
    e = named[0]
    assert e.sha256 in readme
    assert re.search(rf"emily model use {re.escape(e.name)}\b", readme)


def _raw() -> dict[str, Any]:
    return asdict(load_catalog()[0])


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"sha256": "0" * 63}, "sha256"),
        ({"sha256": "G" * 64}, "sha256"),
        ({"revision": "main"}, "revision"),
        ({"name": "Has Space"}, "name"),
        ({"repo": "no-slash"}, "repo"),
        ({"file": "model.bin"}, "file"),
        ({"file": "../x.gguf"}, "file"),
        ({"size_bytes": 0}, "size_bytes"),
        ({"size_bytes": True}, "size_bytes"),
        ({"size_bytes": "12"}, "size_bytes"),
        ({"license": " "}, "license"),
        ({"extra": 1}, "unknown"),
    ],
)
def test_a_malformed_entry_is_refused_naming_the_field(
    tmp_path: Path, change: dict[str, Any], needle: str
) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"models": [_raw() | change]}), encoding="utf-8")
    with pytest.raises(ValueError, match=needle) as err:
        load_catalog(path)
    assert "models[0]" in str(err.value)


@pytest.mark.parametrize(
    "doc",
    ["not json", "[]", '{"models": []}', '{"models": [1]}'],
)
def test_a_malformed_file_is_refused(tmp_path: Path, doc: str) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(doc, encoding="utf-8")
    with pytest.raises(ValueError):
        load_catalog(path)


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"models": [_raw(), _raw()]}), encoding="utf-8")
    with pytest.raises(ValueError, match="duplicate"):
        load_catalog(path)


def _entry_for(served: Hub, **change: Any) -> CatalogEntry:
    data = served.files["org/tiny-GGUF/tiny-q4.gguf"]
    entry = CatalogEntry(
        name="tiny",
        repo="org/tiny-GGUF",
        file="tiny-q4.gguf",
        revision="b" * 40,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        license="Apache-2.0",
        summary="a test model",
    )
    return replace(entry, **change)


def test_pull_by_name_fetches_the_pinned_revision_and_records_it_verified(
    hub: Hub,  # noqa: F811
    tmp_path: Path,
) -> None:
    entry = _entry_for(hub)
    root = tmp_path / "models"
    path = pull_any(
        "tiny", directory=root, cache_dir=tmp_path / "c", endpoint=hub.url, catalog=(entry,)
    )
    assert path.name == "tiny-q4.gguf"
    assert any(f"/resolve/{entry.revision}/" in p for _, p, _ in hub.seen)
    record = read_record(root)["tiny-q4.gguf"]
    assert record == {"source": entry.spec, "sha256": entry.sha256, "verified": True}


@pytest.mark.parametrize(
    ("change", "needle"),
    [({"sha256": "0" * 64}, "checksum mismatch"), ({"size_bytes": 7}, "bytes, the catalog says")],
)
def test_pull_by_name_refuses_a_file_that_differs_from_the_entry(
    hub: Hub,  # noqa: F811
    tmp_path: Path,
    change: dict[str, Any],
    needle: str,
) -> None:
    root = tmp_path / "models"
    with pytest.raises(DownloadError, match=needle):
        pull_any(
            "tiny",
            directory=root,
            cache_dir=tmp_path / "c",
            endpoint=hub.url,
            catalog=(_entry_for(hub, **change),),
        )
    assert not list(root.glob("*.gguf"))


def test_a_sha256_given_with_a_name_must_agree_with_the_catalog(
    hub: Hub,  # noqa: F811
    tmp_path: Path,
) -> None:
    with pytest.raises(DownloadError, match="differs from the catalog"):
        pull_any("tiny", "1" * 64, directory=tmp_path, endpoint=hub.url, catalog=(_entry_for(hub),))
    assert not hub.seen  # refused before asking the hub


def test_find_accepts_the_catalog_name_of_a_pulled_model(tmp_path: Path) -> None:
    entry = load_catalog()[0]
    (tmp_path / entry.file).write_bytes(b"GGUF")
    assert find(entry.name, tmp_path) == tmp_path / entry.file
    assert find(entry.stem, tmp_path) == tmp_path / entry.file


def test_cli_catalog_lists_every_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "catalog", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in shown] == [e.name for e in load_catalog()]
    assert all(e["spec"].endswith("@" + e["revision"]) for e in shown)
    assert main(["model", "catalog"]) == 0
    assert load_catalog()[0].sha256 in capsys.readouterr().out
