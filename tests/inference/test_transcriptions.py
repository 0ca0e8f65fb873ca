"""``/v1/audio/transcriptions`` with the official openai client, answered by the real
perception service (Whisper tiny.en) over the inference service's own Zenoh session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emily.bus import Keys, open_session
from emily.bus.endpoints import TRANSCRIBE
from emily.bus.rpc import wait_for_server
from emily.bus.schemas.perception import MAX_MEDIA_BYTES
from emily.inference.http_api import create_app
from emily.inference.transcriptions import PerceptionClient
from emily.observe.http import HTTPServer
from emily.perception.config import PerceptionConfig
from emily.perception.service import PerceptionService
from tests.conftest import free_port
from tests.fixtures.llm import RunningInference
from tests.perception.media import note, silence, speak

pytestmark = pytest.mark.slow
SENTENCE = "I left my keys in the blue coat in the hall."


@pytest.fixture(scope="module")
def perceiving(inference_service: RunningInference) -> Iterator[str]:
    """Perception on the inference service's bus; yields the inference HTTP URL."""
    session = open_session(inference_service.bus)
    service = PerceptionService(
        replace(PerceptionConfig.load(), cpu_threads=2), session, inference_service.keys
    )
    inner = inference_service.service.session
    assert wait_for_server(inner, TRANSCRIBE.key(inference_service.keys), timeout_s=10)
    yield inference_service.http_url
    service.close()
    session.close()


@pytest.fixture(scope="module")
def client(perceiving: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{perceiving}/v1", api_key="unused", max_retries=0, timeout=120)


def form(url: str, files: dict | None, data: dict | None = None) -> httpx.Response:
    return httpx.post(f"{url}/v1/audio/transcriptions", files=files, data=data, timeout=120)


def test_openai_client_transcribes_a_spoken_sentence(client: openai.OpenAI) -> None:
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("clip.wav", speak(SENTENCE)), language="en"
    )
    assert raw.headers["x-emily-model"] == "whisper-tiny.en"
    text = raw.parse().text.lower()
    assert all(w in text for w in ("left", "keys", "blue", "coat")), text


def test_verbose_json_has_segments_and_duration(client: openai.OpenAI) -> None:
    out = client.audio.transcriptions.create(
        model="whisper-1",
        file=("clip.wav", speak("The train to Edinburgh leaves from platform four.")),
        response_format="verbose_json",
        temperature=0,
    )
    assert out.language == "en" and 2.0 < out.duration < 6.0
    assert out.segments and out.segments[0].start >= 0
    assert out.segments[-1].end <= out.duration + 0.5
    assert "platform" in out.text.lower()
    assert -5 < out.segments[0].avg_logprob <= 0


def test_text_format_is_plain_text(client: openai.OpenAI) -> None:
    out = client.audio.transcriptions.create(
        model="whisper-1", file=("clip.wav", speak(SENTENCE)), response_format="text"
    )
    assert isinstance(out, str) and "coat" in out.lower()


def test_silence_transcribes_to_empty_text(perceiving: str) -> None:
    r = form(perceiving, {"file": ("quiet.wav", silence(1.0))}, {"model": "whisper-1"})
    assert r.status_code == 200 and r.json() == {"text": ""}


@pytest.mark.parametrize(
    ("files", "data", "status", "says"),
    [
        ({"file": ("note.png", note(["not audio"]))}, {"model": "m"}, 400, "not audio"),
        ({"file": ("e.wav", b"")}, {"model": "m"}, 400, "empty"),
        ({"other": ("x.wav", b"abc")}, {"model": "m"}, 400, "file: required"),
        ({"x": ("x", b"")}, {"model": "m", "file": "text, not a file"}, 400, "file part"),
        ({"file": ("c.wav", b"RIFF")}, {}, 400, "model: required"),
        ({"file": ("c.wav", b"RIFF")}, {"model": "m", "response_format": "srt"}, 400, "srt"),
        ({"file": ("c.wav", b"RIFF")}, {"model": "m", "temperature": "0.4"}, 400, "greedily"),
        ({"file": ("c.wav", b"RIFF")}, {"model": "m", "temperature": "hot"}, 400, "number"),
        ({"file": ("c.wav", b"RIFF")}, {"model": "m", "prompt": "Edinburgh"}, 400, "prompt"),
        ({"file": ("c.wav", b"RIFF")}, {"model": "m", "language": "x"}, 400, "language"),
        ({"file": ("c.wav", b"RIFF")}, {"model": "m", "colour": "red"}, 400, "colour"),
        (
            {"file": ("c.wav", b"RIFF")},
            {"model": "m", "timestamp_granularities[]": "word"},
            400,
            "segment",
        ),
    ],
)
def test_bad_input_gets_a_clear_400(
    perceiving: str, files: dict | None, data: dict, status: int, says: str
) -> None:
    r = form(perceiving, files, data)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == "bad_request" and says in err["message"], err


def test_json_body_is_a_400_asking_for_multipart(perceiving: str) -> None:
    r = httpx.post(f"{perceiving}/v1/audio/transcriptions", json={"file": "x"}, timeout=30)
    assert r.status_code == 400 and "multipart" in r.json()["error"]["message"]


def test_oversize_clip_is_413(perceiving: str) -> None:
    big = b"\0" * (MAX_MEDIA_BYTES + 1)
    r = form(perceiving, {"file": ("big.wav", big)}, {"model": "m"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_ignored_openai_fields_are_named_in_a_header(perceiving: str) -> None:
    data = {"model": "whisper-1", "timestamp_granularities[]": "segment"}
    r = form(perceiving, {"file": ("c.wav", speak("Good morning."))}, data)
    assert r.status_code == 200, r.text
    assert r.headers["x-emily-ignored-fields"] == "timestamp_granularities[]"


@pytest.fixture(scope="module")
def without_perception(inference_service: RunningInference) -> Iterator[str]:
    """An inference app whose bus node has no perception service, behind a token."""
    svc = inference_service.service
    nobody = PerceptionClient(svc.session, Keys("nobody"), timeout_s=5)
    app = create_app(svc.engine, svc.scheduler, svc.metrics, api_key="t0k", perception=nobody)
    server = HTTPServer(app, "127.0.0.1", free_port())
    assert server.wait_started()
    yield server.url
    server.close()


def test_absent_perception_is_503_with_the_error_envelope(without_perception: str) -> None:
    c = openai.OpenAI(base_url=f"{without_perception}/v1", api_key="t0k", max_retries=0)
    with pytest.raises(openai.APIStatusError) as err:
        c.audio.transcriptions.create(model="whisper-1", file=("c.wav", speak("Hello there.")))
    assert err.value.status_code == 503
    body = err.value.body
    assert isinstance(body, dict) and body["code"] == "unavailable"
    assert "emily serve perception" in body["message"]


def test_transcriptions_need_the_bearer_token(without_perception: str) -> None:
    r = form(without_perception, {"file": ("c.wav", b"RIFF")}, {"model": "m"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_openapi_documents_the_multipart_form(perceiving: str) -> None:
    doc = httpx.get(f"{perceiving}/openapi.json", timeout=30).json()
    op = doc["paths"]["/v1/audio/transcriptions"]["post"]
    schema = op["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["file", "model"] and "503" in op["responses"]


FIELDS = st.sampled_from(["model", "language", "response_format", "temperature", "prompt", "x"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    clip=st.binary(max_size=512) | st.sampled_from([b"RIFF\x24\0\0\0WAVEfmt ", b"\xff\xfb"]),
    fields=st.dictionaries(FIELDS, st.text(max_size=12), max_size=4),
)
def test_fuzzed_forms_never_get_a_server_error(
    perceiving: str, clip: bytes, fields: dict[str, str]
) -> None:
    r = form(perceiving, {"file": ("f.bin", clip)}, fields)
    assert r.status_code in (200, 400, 413), r.text
    if r.status_code != 200:
        assert r.json()["error"]["message"]
