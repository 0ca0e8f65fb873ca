"""Media made in the test: speech spoken by espeak-ng, notes rendered by Pillow."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave

import pytest
from PIL import Image, ImageDraw, ImageFont

#: espeak-ng's US voice at 140 words/min with 80 ms between words: the setting tiny.en
#: transcribes best among those tried (the WER bound below is measured with it).
VOICE = ("-v", "en-us", "-s", "140", "-g", "8")

SENTENCES = (
    "My favourite tea is a smoky lapsang souchong.",
    "The meeting with the dentist is on Tuesday at nine.",
    "Please water the tomatoes in the greenhouse tomorrow morning.",
    "The train to Edinburgh leaves from platform four.",
    "The red kite nested in the old oak by the river.",
    "I left my keys in the blue coat in the hall.",
)


def speak(text: str) -> bytes:
    """``text`` spoken by espeak-ng, as a 22.05 kHz mono 16-bit WAV file's bytes."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: apt-get install espeak-ng (make test does)")
    return subprocess.run(
        ["espeak-ng", *VOICE, "--stdout", text], capture_output=True, check=True
    ).stdout


def silence(seconds: float, rate: int = 16_000) -> bytes:
    """A WAV file of ``seconds`` of digital silence (16-bit mono at ``rate`` Hz)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(seconds * rate))
    return buf.getvalue()


def note(lines: list[str], *, size: int = 32, fmt: str = "PNG") -> bytes:
    """Black text on white, one line per item, in Pillow's bundled font, as ``fmt``."""
    font = ImageFont.load_default(size=size)
    width = 60 + max(int(font.getlength(line)) for line in lines)
    img = Image.new("L", (width, 60 + len(lines) * (size + 16)), 255)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((30, 30 + i * (size + 16)), line, font=font, fill=0)
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format=fmt)
    return buf.getvalue()
