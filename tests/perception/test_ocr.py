"""Tesseract on notes rendered by Pillow in the test, and on bad images."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from emily.perception.errors import MediaError
from emily.perception.ocr import load_image
from tests.perception.media import note, speak

NOTE = ["Buy oat milk and rye bread.", "Call Priya about the garden on Friday."]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_clean_note_is_read_exactly(reader, fmt: str) -> None:
    reply = reader.read(note(NOTE, fmt=fmt))
    assert reply.text == "\n".join(NOTE)
    assert reply.model.startswith("tesseract-") and reply.model.endswith("-eng")


def test_words_carry_boxes_inside_the_image_and_confidences(reader) -> None:
    reply = reader.read(note(NOTE))
    assert [w.text for w in reply.words] == " ".join(NOTE).split()
    for w in reply.words:
        assert w.left + w.width <= reply.width and w.top + w.height <= reply.height
        assert 0.5 < w.confidence <= 1.0
    first, last = reply.words[0], reply.words[-1]
    assert last.top > first.top, "the second line lies below the first"
    assert 0.5 < reply.confidence <= 1.0


def test_blank_image_reads_nothing(reader) -> None:
    buf = io.BytesIO()
    Image.new("L", (200, 100), 255).save(buf, format="PNG")
    reply = reader.read(buf.getvalue())
    assert reply.text == "" and reply.words == [] and reply.confidence == 0.0


def test_audio_is_not_an_image() -> None:
    with pytest.raises(MediaError, match="not an image"):
        load_image(speak("hello"), 10**7)


def test_truncated_image_is_refused() -> None:
    data = note(NOTE)
    with pytest.raises(MediaError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2], 10**7)


def test_oversize_image_is_refused() -> None:
    with pytest.raises(MediaError, match="pixels"):
        load_image(note(NOTE), 1000)


def test_decompression_bomb_is_refused_as_too_many_pixels() -> None:
    buf = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buf, format="PNG")  # 400 Mpx in a few kB
    with pytest.raises(MediaError, match="too many pixels"):
        load_image(buf.getvalue(), 10**9)


def test_format_outside_the_list_is_refused() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(buf, format="ICO")
    with pytest.raises(MediaError, match="this one is ICO"):
        load_image(buf.getvalue(), 10**7)
