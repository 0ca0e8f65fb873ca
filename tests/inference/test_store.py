"""``emily model pull/list`` against a real local HTTP server serving a real small GGUF."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import gguf
import numpy as np
import pytest

from emily.cli.main import main
from emily.inference.errors import DownloadError
from emily.inference.store import list_models, models_dir, pull


def write_gguf(path: Path) -> bytes:
    """A small but valid GGUF file (metadata plus one 64 KiB tensor), written by ``gguf``."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-test-model")
    writer.add_block_count(1)
    writer.add_tensor("weights", np.arange(16384, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


@dataclass
class Site:
    """What the test server serves and what it saw."""

    files: dict[str, bytes]
    honor_range: bool = True
    drop_after: int | None = None  # injected fault: cut the next response after N bytes
    ranges: list[str | None] = field(default_factory=list)
    url: str = ""


def handler_for(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            data = site.files.get(self.path.lstrip("/"))
            if data is None:
                self.send_error(404)
                return
            rng = self.headers.get("Range")
            site.ranges.append(rng)
            start = 0
            if rng and site.honor_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if site.drop_after is not None:
                cut, site.drop_after = site.drop_after, None
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    data = write_gguf(tmp_path / "src.gguf")
    s = Site(files={"tiny.gguf": data, "junk.gguf": b"NOPE" + bytes(1000)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(s))
    s.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield s
    server.shutdown()
    server.server_close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_pull_downloads_and_verifies(site: Site) -> None:
    data = site.files["tiny.gguf"]
    path = pull(f"{site.url}/tiny.gguf", sha(data), progress=False)
    assert path == models_dir() / "tiny.gguf" and path.read_bytes() == data
    assert gguf.GGUFReader(str(path)).fields["general.name"].contents() == "tiny-test-model"
    assert [m.name for m in list_models()] == ["tiny"]
    assert pull(f"{site.url}/tiny.gguf", sha(data), progress=False) == path
    assert len(site.ranges) == 1  # the second pull found the verified file


def test_injected_connection_drop_resumes_with_range(site: Site) -> None:
    data = site.files["tiny.gguf"]
    site.drop_after = 40_000
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        pull(f"{site.url}/tiny.gguf", sha(data), progress=False)
    part = models_dir() / "tiny.gguf.part"
    assert part.stat().st_size == 40_000
    assert list_models() == []  # a partial file is never listed as a model
    path = pull(f"{site.url}/tiny.gguf", sha(data), progress=False)
    assert site.ranges == [None, "bytes=40000-"]
    assert path.read_bytes() == data and not part.exists()


def test_server_without_range_support_restarts_cleanly(site: Site) -> None:
    data = site.files["tiny.gguf"]
    site.drop_after, site.honor_range = 30_000, False
    with pytest.raises(DownloadError):
        pull(f"{site.url}/tiny.gguf", sha(data), progress=False)
    path = pull(f"{site.url}/tiny.gguf", sha(data), progress=False)
    assert path.read_bytes() == data


def test_checksum_mismatch_removes_the_file(site: Site) -> None:
    with pytest.raises(DownloadError, match="checksum mismatch"):
        pull(f"{site.url}/tiny.gguf", "0" * 64, progress=False)
    assert not any(models_dir().iterdir())


def test_non_gguf_file_is_refused(site: Site) -> None:
    junk = site.files["junk.gguf"]
    with pytest.raises(DownloadError, match="not a GGUF"):
        pull(f"{site.url}/junk.gguf", sha(junk), progress=False)
    assert not any(models_dir().iterdir())


@pytest.mark.parametrize(
    ("url", "digest", "message"),
    [
        ("/tiny.gguf", "abc", "64 hex digits"),
        ("ftp://example.invalid/x.gguf", "0" * 64, "only http"),
        ("/missing.gguf", "0" * 64, "HTTP 404"),
        ("/..%2Fescape.gguf", "0" * 64, "cannot use"),
    ],
)
def test_bad_pulls_say_what_is_wrong(site: Site, url: str, digest: str, message: str) -> None:
    with pytest.raises(DownloadError, match=message):
        pull(site.url + url if url.startswith("/") else url, digest, progress=False)


def test_unreachable_server_is_a_download_error() -> None:
    with pytest.raises(DownloadError, match="check the address"):
        pull("http://127.0.0.1:9/x.gguf", "0" * 64, progress=False, timeout_s=2)


def test_cli_pull_and_list(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    data = site.files["tiny.gguf"]
    url = f"{site.url}/tiny.gguf"
    assert main(["model", "pull", url, "--sha256", sha(data), "--name", "mine.gguf"]) == 0
    out = capsys.readouterr()
    assert str(models_dir() / "mine.gguf") in out.out
    assert "use it with: emily model use mine" in out.out
    assert out.err == ""  # no progress bar where stderr is not a terminal
    assert main(["model", "list"]) == 0
    listing = capsys.readouterr().out
    assert "mine" in listing and "embedded" in listing
    assert main(["model", "pull", url, "--sha256", "f" * 64, "--name", "bad.gguf"]) == 1
    assert "checksum mismatch" in capsys.readouterr().err
