"""The perception service over a real Zenoh pair: both endpoints, bad media, metrics."""

from __future__ import annotations

import base64

import pytest
import zenoh

from emily.bus.endpoints import CAPTION, READ, TRANSCRIBE
from emily.bus.health import Peers
from emily.bus.messages import decode
from emily.bus.rpc import RequestFailed
from emily.bus.schemas.perception import (
    MAX_MEDIA_BYTES,
    CaptionRequest,
    ReadRequest,
    TranscribeRequest,
    b64_media,
)
from emily.errors import ConfigError, PayloadError
from emily.perception.caption import Captioner
from emily.perception.config import PerceptionConfig
from emily.perception.errors import ModelError
from emily.perception.service import PerceptionService
from tests.perception.conftest import KEYS
from tests.perception.media import note, silence, speak


def _client(pair: tuple[zenoh.Session, zenoh.Session]) -> zenoh.Session:
    return pair[1]


def test_transcribe_over_the_bus(perception: PerceptionService, zenoh_pair) -> None:
    clip = speak("I left my keys in the blue coat in the hall.")
    reply = TRANSCRIBE.call(
        _client(zenoh_pair), KEYS, TranscribeRequest(audio=b64_media(clip)), timeout_s=60
    )
    assert "keys" in reply.text.lower() and "coat" in reply.text.lower()
    assert reply.model == "whisper-tiny.en"
    value = perception.metrics.registry.get_sample_value(
        "emily_perception_requests_total", {"op": "transcribe", "outcome": "ok"}
    )
    assert value is not None and value >= 1


def test_read_over_the_bus(perception: PerceptionService, zenoh_pair) -> None:
    image = note(["Dentist on Tuesday at nine."])
    reply = READ.call(_client(zenoh_pair), KEYS, ReadRequest(image=b64_media(image)), timeout_s=60)
    assert reply.text == "Dentist on Tuesday at nine."
    assert len(reply.words) == 5


def test_media_asked_to_be_kept_is_stored_by_its_sha256(
    perception: PerceptionService, zenoh_pair
) -> None:
    image = note(["Keep this receipt."])
    kept = READ.call(
        _client(zenoh_pair), KEYS, ReadRequest(image=b64_media(image), keep=True), timeout_s=60
    )
    assert kept.kept and perception.media.path(kept.sha256).read_bytes() == image
    other = note(["Do not keep this one."])
    passed = READ.call(_client(zenoh_pair), KEYS, ReadRequest(image=b64_media(other)), timeout_s=60)
    assert not passed.kept and not perception.media.path(passed.sha256).exists()
    quiet = silence(1.0)
    heard = TRANSCRIBE.call(
        _client(zenoh_pair),
        KEYS,
        TranscribeRequest(audio=b64_media(quiet), keep=True),
        timeout_s=60,
    )
    assert heard.text == "" and not heard.kept  # nothing heard: no episode, nothing kept
    assert not perception.media.path(heard.sha256).exists()


def test_bad_media_is_a_bad_request(perception: PerceptionService, zenoh_pair) -> None:
    with pytest.raises(RequestFailed) as audio_err:
        TRANSCRIBE.call(
            _client(zenoh_pair), KEYS, TranscribeRequest(audio=b64_media(note(["x"]))), timeout_s=30
        )
    assert audio_err.value.reply.code == "bad_request"
    assert "image, not audio" in audio_err.value.reply.message
    with pytest.raises(RequestFailed) as image_err:
        READ.call(
            _client(zenoh_pair), KEYS, ReadRequest(image=b64_media(b"\x00" * 64)), timeout_s=30
        )
    assert image_err.value.reply.code == "bad_request"
    bad = perception.metrics.registry.get_sample_value(
        "emily_perception_requests_total", {"op": "read", "outcome": "bad_request"}
    )
    assert bad is not None and bad >= 1


def test_a_clip_of_megabytes_crosses_the_bus(perception: PerceptionService, zenoh_pair) -> None:
    clip = silence(180.0)  # 5.8 MB: Zenoh fragments it on loopback
    assert len(clip) > 5_000_000
    reply = TRANSCRIBE.call(
        _client(zenoh_pair), KEYS, TranscribeRequest(audio=b64_media(clip)), timeout_s=120
    )
    assert reply.duration_s == pytest.approx(180.0, abs=0.1)
    assert reply.text == ""


def test_schema_refuses_oversize_empty_and_non_base64_media() -> None:
    with pytest.raises(ValueError, match="at most"):
        b64_media(b"\x00" * (MAX_MEDIA_BYTES + 1))
    with pytest.raises(PayloadError):
        decode(TranscribeRequest, b'{"audio": ""}')
    with pytest.raises(ValueError, match="base64"):
        ReadRequest(image="not base64!")
    too_big = base64.b64encode(b"\x00" * (MAX_MEDIA_BYTES + 3)).decode()
    with pytest.raises(ValueError, match="at most"):
        ReadRequest(image=too_big)


def test_liveliness_token(perception: PerceptionService, zenoh_pair) -> None:
    peers = Peers(_client(zenoh_pair), KEYS, {"perception": KEYS})
    try:
        assert peers.wait("perception", timeout_s=10)
    finally:
        peers.close()


def test_caption_without_a_vision_model_is_unavailable(
    perception: PerceptionService, zenoh_pair
) -> None:
    with pytest.raises(RequestFailed) as err:
        CAPTION.call(
            _client(zenoh_pair), KEYS, CaptionRequest(image=b64_media(note(["x"]))), timeout_s=30
        )
    assert err.value.reply.code == "unavailable" and "caption_model" in err.value.reply.message


def test_caption_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="go together"):
        PerceptionConfig(caption_model="/srv/vision.gguf")
    with pytest.raises(ModelError, match="is not a file"):
        Captioner(
            PerceptionConfig(caption_model="/absent.gguf", caption_projector="/absent.mmproj")
        )
