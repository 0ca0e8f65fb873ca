"""``emily model pull ORG/REPO/FILE.gguf | use | rm | list``: Hugging Face pulls through
``huggingface_hub`` against a hub served on loopback (its resolve API: HEAD for the
commit, ETag and size, GET with ranges), the record of checksums, and the selection."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from emily.cli.main import main
from emily.inference.errors import DownloadError, ModelLoadError
from emily.inference.models import (
    HubFile,
    parse_spec,
    pull_any,
    read_record,
    remove,
    select,
    selected,
)
from emily.inference.store import models_dir
from tests.inference.test_store import write_gguf

COMMIT = "a" * 40


@dataclass
class Hub:
    """Files by ``repo/file`` path, and the requests the hub saw."""

    files: dict[str, bytes]
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    url: str = ""


def hub_handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _file(self) -> bytes | None:
            # /{org}/{repo}/resolve/{revision}/{path}
            parts = self.path.split("?")[0].lstrip("/").split("/")
            if len(parts) < 5 or parts[2] != "resolve":
                return None
            return hub.files.get("/".join(parts[:2] + parts[4:]))

        def _head(self, data: bytes) -> None:
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')

        def do_HEAD(self) -> None:
            hub.seen.append(("HEAD", self.path, None))
            data = self._file()
            if data is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.end_headers()
                return
            self.send_response(200)
            self._head(data)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            hub.seen.append(("GET", self.path, rng))
            data = self._file()
            if data is None:
                self.send_error(404)
                return
            start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
            self.send_response(206 if rng else 200)
            self._head(data)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            self.wfile.write(data[start:])

    return Handler


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    import huggingface_hub.constants

    # loading the embedder earlier in this process switches the hub client offline
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    data = write_gguf(tmp_path / "src.gguf")
    h = Hub(files={"org/tiny-GGUF/tiny-q4.gguf": data, "org/tiny-GGUF/q8/tiny-q8.gguf": data})
    h.files["org/junk/junk.gguf"] = b"NOPE" + bytes(100)
    server = ThreadingHTTPServer(("127.0.0.1", 0), hub_handler(h))
    h.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield h
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("org/repo/model.gguf", HubFile("org/repo", "model.gguf")),
        ("org/repo/q4/model-Q4_K_M.gguf@main", HubFile("org/repo", "q4/model-Q4_K_M.gguf", "main")),
        ("https://host/x/model.gguf", "https://host/x/model.gguf"),
    ],
)
def test_sources_resolve(spec: str, expected: HubFile | str) -> None:
    assert parse_spec(spec) == expected


@pytest.mark.parametrize(
    "spec", ["org/repo", "org/repo/model.bin", "org/../etc/x.gguf", "ftp://h/x.gguf", "/abs.gguf"]
)
def test_other_sources_are_refused_with_the_accepted_forms(spec: str) -> None:
    with pytest.raises(DownloadError, match=r"ORG/REPO/FILE\.gguf"):
        parse_spec(spec)


def test_hub_pull_caches_links_and_records(hub: Hub, tmp_path: Path) -> None:
    data = hub.files["org/tiny-GGUF/tiny-q4.gguf"]
    digest = hashlib.sha256(data).hexdigest()
    cache = tmp_path / "hf-cache"
    path = pull_any("org/tiny-GGUF/tiny-q4.gguf", digest, cache_dir=cache, endpoint=hub.url)
    assert path == models_dir() / "tiny-q4.gguf" and path.read_bytes() == data
    assert path.is_symlink() and cache in path.resolve().parents  # one copy, in the hub cache
    assert read_record()["tiny-q4.gguf"] == {
        "source": "org/tiny-GGUF/tiny-q4.gguf",
        "sha256": digest,
        "verified": True,
    }
    gets = [s for s in hub.seen if s[0] == "GET"]
    assert len(gets) == 1 and gets[0][1].endswith("/resolve/main/tiny-q4.gguf")
    # a second pull is served from the cache; without --sha256 the checksum is recorded
    again = pull_any("org/tiny-GGUF/tiny-q4.gguf", cache_dir=cache, endpoint=hub.url)
    assert again == path and len([s for s in hub.seen if s[0] == "GET"]) == 1
    assert read_record()["tiny-q4.gguf"]["verified"] is False
    assert read_record()["tiny-q4.gguf"]["sha256"] == digest


def test_hub_pull_of_a_file_in_a_folder_at_a_revision(hub: Hub, tmp_path: Path) -> None:
    path = pull_any("org/tiny-GGUF/q8/tiny-q8.gguf@v1", cache_dir=tmp_path / "c", endpoint=hub.url)
    assert path.name == "tiny-q8.gguf"
    assert any("/resolve/v1/q8/tiny-q8.gguf" in s[1] for s in hub.seen)


def test_hub_pull_refuses_a_wrong_checksum_a_missing_file_and_junk(
    hub: Hub, tmp_path: Path
) -> None:
    cache = tmp_path / "c"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        pull_any("org/tiny-GGUF/tiny-q4.gguf", "0" * 64, cache_dir=cache, endpoint=hub.url)
    assert not (models_dir() / "tiny-q4.gguf").exists() and read_record() == {}
    with pytest.raises(DownloadError, match=r"org/tiny-GGUF/absent\.gguf"):
        pull_any("org/tiny-GGUF/absent.gguf", cache_dir=cache, endpoint=hub.url)
    with pytest.raises(DownloadError, match="not a GGUF"):
        pull_any("org/junk/junk.gguf", cache_dir=cache, endpoint=hub.url)
    with pytest.raises(DownloadError, match="64 hex digits"):
        pull_any("org/tiny-GGUF/tiny-q4.gguf", "xyz", cache_dir=cache, endpoint=hub.url)


def test_use_selects_and_rm_removes(hub: Hub, tmp_path: Path) -> None:
    path = pull_any("org/tiny-GGUF/tiny-q4.gguf", cache_dir=tmp_path / "c", endpoint=hub.url)
    assert selected() is None
    assert select("tiny-q4") == path and selected() == path
    with pytest.raises(ModelLoadError, match="have: tiny-q4"):
        select("other")
    cached = path.resolve()
    assert remove("tiny-q4.gguf") == path
    assert not path.exists() and selected() is None and read_record() == {}
    assert cached.is_file()  # the link is removed, the hub's cached copy is kept


def test_cli_pull_use_list_rm(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    assert main(["model", "pull", "org/tiny-GGUF/tiny-q4.gguf", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "tiny-q4.gguf" in out and "sha256 " in out
    assert "emily model use" not in out  # --quiet: the path and its checksum only
    assert main(["model", "use", "tiny-q4"]) == 0
    assert "selected" in capsys.readouterr().out
    assert main(["model", "list", "--json"]) == 0
    listing = capsys.readouterr().out
    assert '"selected": true' in listing and '"loaded": false' in listing
    assert main(["model", "rm", "tiny-q4"]) == 0
    assert main(["model", "rm", "tiny-q4"]) == 1
    assert "no model 'tiny-q4'" in capsys.readouterr().err
