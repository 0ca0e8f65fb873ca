"""The content-addressed media store: bounded, deduplicated, oldest out first."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emily.perception.media import MediaStore


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_is_content_addressed_and_deduplicated(tmp_path: Path) -> None:
    store = MediaStore(tmp_path / "media", 1000)
    data = b"a photo of a note"
    assert store.put(sha(data), data) and store.put(sha(data), data)
    assert store.path(sha(data)).read_bytes() == data
    assert store.path(sha(data)).parent.name == sha(data)[:2]
    assert len(store.files()) == 1 and store.total_bytes() == len(data)
    assert store.remove(sha(data)) and not store.remove(sha(data))
    assert store.files() == []


def test_oldest_go_first_and_the_newest_stays(tmp_path: Path) -> None:
    store = MediaStore(tmp_path, 250)
    blobs = [bytes([i]) * 100 for i in range(3)]
    for i, b in enumerate(blobs):
        store.put(sha(b), b)
        os.utime(store.path(sha(b)), ns=(i * 10**9, i * 10**9))  # distinct mtimes
    store.put(sha(blobs[2]), blobs[2])  # rewritten: newest, and the bound evicts
    kept = {p.name for p in store.files()}
    assert kept == {sha(blobs[1]), sha(blobs[2])}
    assert store.total_bytes() <= 250


def test_media_over_the_bound_and_a_zero_bound_keep_nothing(tmp_path: Path) -> None:
    assert not MediaStore(tmp_path, 10).put(sha(b"x" * 11), b"x" * 11)
    assert not MediaStore(tmp_path, 0).put(sha(b"x"), b"x")
    assert MediaStore(tmp_path, 10).files() == []
    with pytest.raises(ValueError, match="SHA-256"):
        MediaStore(tmp_path, 10).path("../../etc/passwd")
    with pytest.raises(ValueError, match=">= 0"):
        MediaStore(tmp_path, -1)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=12),
    bound=st.integers(min_value=0, max_value=800),
)
def test_the_bound_is_never_exceeded_and_the_last_fitting_put_is_kept(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], bound: int
) -> None:
    store = MediaStore(tmp_path_factory.mktemp("media"), bound)
    for i, n in enumerate(sizes):
        data = i.to_bytes(2, "big") * (n // 2 + 1)
        stored = store.put(sha(data), data)
        assert stored == (len(data) <= bound)
        assert store.total_bytes() <= bound
        if stored:
            assert store.path(sha(data)).read_bytes() == data
