"""``emily perceive``: a clip and a note through the CLI to the running service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emily.bus import BusConfig
from emily.cli.main import main
from emily.perception.service import PerceptionService
from tests.conftest import free_port
from tests.perception.media import note, speak


def use_bus(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    monkeypatch.setenv("EMILY_BUS__NODE", "test")
    monkeypatch.setenv("EMILY_BUS__CONNECT", json.dumps([endpoint]))
    monkeypatch.setenv("EMILY_BUS__LISTEN", "[]")


def test_perceive_audio_and_image(
    perception: PerceptionService,
    bus_configs: tuple[BusConfig, BusConfig],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    use_bus(monkeypatch, bus_configs[0].listen[0])
    clip, image = tmp_path / "clip.wav", tmp_path / "note.png"
    clip.write_bytes(speak("The red kite nested in the old oak by the river."))
    image.write_bytes(note(["Call Priya on Friday."]))
    assert main(["perceive", "--audio", str(clip)]) == 0
    out = capsys.readouterr().out
    assert "kite" in out.lower() and "whisper-tiny.en" in out and "s of audio" in out
    assert main(["perceive", "--image", str(image), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == "Call Priya on Friday."
    assert main(["perceive", "--audio", str(image)]) == 1
    assert "image, not audio" in capsys.readouterr().err


def test_perceive_without_a_service_says_how_to_start_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    use_bus(monkeypatch, f"tcp/127.0.0.1:{free_port()}")
    image = tmp_path / "note.png"
    image.write_bytes(note(["x"]))
    assert main(["perceive", "--image", str(image), "--wait", "1"]) == 1
    assert "emily serve perception" in capsys.readouterr().err
