"""``emily observe``'s request: one of the text, ``--audio`` and ``--image``."""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

import pytest

from emily.bus.schemas.perception import MAX_MEDIA_BYTES
from emily.cli.observe import build_request
from emily.errors import EmilyError


def args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {
        "text": None,
        "audio": None,
        "image": None,
        "no_llm": False,
        "max_tokens": 16,
    }
    return argparse.Namespace(**(base | kw))


def test_a_file_becomes_base64_media(tmp_path: Path) -> None:
    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"RIFF-and-more")
    req = build_request(args(audio=str(clip)))
    assert req.modality == "audio" and base64.b64decode(req.audio or "") == b"RIFF-and-more"
    assert req.text == "" and req.image is None
    assert build_request(args(text="hello")).modality == "text"


@pytest.mark.parametrize(
    "kw", [{}, {"text": "hi", "image": "x.png"}, {"audio": "a.wav", "image": "b.png"}]
)
def test_exactly_one_observation(kw: dict[str, str]) -> None:
    with pytest.raises(EmilyError, match="observe one thing"):
        build_request(args(**kw))


def test_missing_empty_and_oversize_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(EmilyError, match="cannot read"):
        build_request(args(image=str(tmp_path / "absent.png")))
    big = tmp_path / "big.wav"
    big.write_bytes(b"\x00" * (MAX_MEDIA_BYTES + 1))
    with pytest.raises(EmilyError, match="at most"):
        build_request(args(audio=str(big)))
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(EmilyError, match="is empty"):
        build_request(args(audio=str(empty)))
