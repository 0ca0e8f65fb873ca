"""Audio and images as observations: cognition, the real perception service (tiny.en,
Tesseract) and the real memory service (Postgres + pgvector, MiniLM) over Zenoh.

A spoken sentence and a photographed note become episodes; a later text question
recalls them first, and their context records modality, media hash and model."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from emily.bus import BusConfig, Keys, open_session
from emily.bus.endpoints import OBSERVE, RECALL
from emily.bus.rpc import RequestFailed, call
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from emily.bus.schemas.memory import RecallReply, RecallRequest
from emily.bus.schemas.perception import b64_media
from emily.cli.main import main
from emily.cognition.reflex import Reflex
from emily.embed import Embedder
from emily.perception.media import MediaStore
from emily.perception.service import PerceptionService
from tests.cognition.conftest import RunningCognition, start_cognition
from tests.cognition.test_integration import MemoryProcess
from tests.perception.conftest import laptop_config
from tests.perception.media import note, speak

pytestmark = pytest.mark.slow
KEYS = Keys("test")


class PerceptionProcess:
    """The real perception service on its own Zenoh session."""

    def __init__(self, connect: str) -> None:
        self.session = open_session(BusConfig(node="test", listen=(), connect=(connect,)))
        self.service = PerceptionService(laptop_config(), self.session, KEYS)

    def close(self) -> None:
        self.service.close()
        self.session.close()


@pytest.fixture
def stack(
    private_reflex: Reflex, pg_dsn: str, minilm: Embedder, tmp_path: Path
) -> Iterator[RunningCognition]:
    cognition = start_cognition(private_reflex, recall_timeout_s=10.0, http=True)
    memory = MemoryProcess(pg_dsn, tmp_path / "memory", minilm, cognition.endpoint)
    perception = PerceptionProcess(cognition.endpoint)
    assert cognition.service.peers.wait("memory", 20)
    yield cognition
    perception.close()
    memory.close()
    cognition.close()


def observe(c: RunningCognition, **fields: object) -> ObserveReply:
    req = ObserveRequest.model_validate({"allow_llm": False, **fields})
    return call(c.client, OBSERVE.key(KEYS), req, ObserveReply, timeout_s=120)


def recall(c: RunningCognition, text: str, user: str = "default") -> RecallReply:
    req = RecallRequest(text=text, k=5, user=user)
    return call(c.client, RECALL.key(KEYS), req, RecallReply, timeout_s=30)


def post(url: str, payload: dict[str, object]) -> tuple[int, object]:
    req = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def stored(c: RunningCognition, text: str, has: str, user: str = "default") -> None:
    """Wait until a recall of ``text`` finds the episode whose text contains ``has``
    (case-folded). A percept is stored only after its media is read, later than the text
    episodes before it, so a wait for any hit would race the one the test asks about."""
    deadline = time.monotonic() + 60
    while not [h for h in recall(c, text, user).hits if has.lower() in h.episode.text.lower()]:
        assert time.monotonic() < deadline, f"no episode with {has!r} reached memory"
        time.sleep(0.2)


def test_spoken_sentence_and_photographed_note_are_recalled_by_text(
    stack: RunningCognition,
) -> None:
    # text episodes first, so the percepts must beat them on their own meaning
    for filler in (
        "The bus to the airport leaves every twenty minutes.",
        "I bought new running shoes last weekend.",
    ):
        observe(stack, text=filler)
    clip = speak("The red kite nested in the old oak by the river.")
    heard = observe(stack, audio=b64_media(clip))
    assert heard.trace.episode in {"stored", "queued"}
    image = note(["Dentist appointment on Tuesday at nine."])
    observe(stack, image=b64_media(image))
    stored(stack, "red kite nest", has="kite")
    stored(stack, "dentist appointment", has="Dentist appointment on Tuesday at nine.")

    bird = recall(stack, "Where did the red kite build its nest?").hits[0].episode
    assert "kite" in bird.text.lower()
    assert bird.context["modality"] == "audio"
    assert bird.context["media_sha256"] == hashlib.sha256(clip).hexdigest()
    assert bird.context["perception_model"] == "whisper-tiny.en"
    assert 0.0 < float(bird.context["perception_confidence"] or 0) <= 1.0
    assert bird.context["media_kept"] is True

    dentist = recall(stack, "When is my dentist appointment?").hits[0].episode
    assert dentist.text == "Dentist appointment on Tuesday at nine."
    assert dentist.context["modality"] == "image"
    assert dentist.context["media_sha256"] == hashlib.sha256(image).hexdigest()
    assert str(dentist.context["perception_model"]).startswith("tesseract-")
    # under the state directory, by its SHA-256
    kept = MediaStore(laptop_config().media_root, 0).path(hashlib.sha256(image).hexdigest())
    assert kept.read_bytes() == image

    asked = observe(stack, text="What did the red kite do by the river?")
    assert any("kite" in m.text.lower() for m in asked.trace.memories), asked.trace


def test_a_spoken_sentence_and_a_note_recall_their_text_twins_first(
    stack: RunningCognition,
) -> None:
    twins = [
        "The red kite nested in the old oak by the river.",
        "Please water the tomatoes in the greenhouse tomorrow morning.",
        "I left my keys in the blue coat in the hall.",
        "The train to Edinburgh leaves from platform four.",
    ]
    for text in twins:
        observe(stack, text=text)
    for text in twins:
        stored(stack, text, has=text)
    for i in (0, 2):
        heard = observe(stack, audio=b64_media(speak(twins[i])))
        assert heard.trace.memories and heard.trace.memories[0].text == twins[i], heard.trace
    seen = observe(
        stack,
        image=b64_media(note(["Please water the tomatoes in the", "greenhouse tomorrow morning."])),
    )
    assert seen.trace.memories and seen.trace.memories[0].text == twins[1], seen.trace


def test_emily_observe_audio_file_becomes_an_episode(
    stack: RunningCognition,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("EMILY_BUS__NODE", "test")
    monkeypatch.setenv("EMILY_BUS__CONNECT", json.dumps([stack.endpoint]))
    monkeypatch.setenv("EMILY_BUS__LISTEN", "[]")
    clip = tmp_path / "keys.wav"
    clip.write_bytes(speak("I left my keys in the blue coat in the hall."))
    assert main(["observe", "--no-llm", "--audio", str(clip)]) == 0
    assert "percept" in capsys.readouterr().out
    stored(stack, "keys coat", has="coat")
    episode = recall(stack, "Where are my keys?").hits[0].episode
    assert "coat" in episode.text.lower() and episode.context["modality"] == "audio"


def test_bad_media_is_refused_and_nothing_is_stored(stack: RunningCognition) -> None:
    with pytest.raises(RequestFailed) as err:
        observe(stack, audio=b64_media(note(["not a sound"])))
    assert err.value.reply.code == "bad_request" and "image, not audio" in err.value.reply.message
    with pytest.raises(RequestFailed) as blank:
        observe(stack, image=base64.b64encode(note([" "])).decode())
    assert blank.value.reply.code == "bad_request" and "no text" in blank.value.reply.message
    assert recall(stack, "not a sound").hits == []


def test_media_over_http(stack: RunningCognition) -> None:
    http = stack.service.http
    assert http is not None
    image = note(["Water the ferns on Sunday."])
    status, body = post(f"{http.url}/v1/observe", {"image": b64_media(image), "allow_llm": False})
    assert status == 200, body
    stored(stack, "ferns", has="ferns")
    episode = recall(stack, "When should the ferns be watered?").hits[0].episode
    assert episode.text == "Water the ferns on Sunday." and episode.context["modality"] == "image"
    status, body = post(f"{http.url}/v1/observe", {"audio": b64_media(image)})
    assert status == 400 and "image, not audio" in str(body)


def test_media_as_a_multipart_form_over_http(stack: RunningCognition) -> None:
    import httpx

    http = stack.service.http
    assert http is not None
    url = f"{http.url}/v1/observe"
    image = note(["Return the library books on Tuesday."])
    form = {
        "allow_llm": "false",
        "session": "desk",
        "user": "ines",
        "context": '{"from": "scanner"}',
    }
    # OCR and embedding on a loaded machine may take longer than httpx's 5-s default;
    # the long timeout only keeps a hang from blocking the suite
    client = httpx.Client(timeout=120)
    reply = client.post(url, files={"image": ("note.png", image, "image/png")}, data=form)
    assert reply.status_code == 200, reply.text
    stored(stack, "library books", has="library books", user="ines")
    default_hits = recall(stack, "library books").hits
    assert all("library" not in h.episode.text for h in default_hits)
    episode = recall(stack, "When are the library books due?", user="ines").hits[0].episode
    assert episode.text == "Return the library books on Tuesday."
    assert episode.user == "ines"  # a picture's text twin is the sender's, not the default's
    assert episode.context["modality"] == "image" and episode.context["from"] == "scanner"
    assert episode.session == "desk"
    # a bad field is one clear 400 naming it; media given as text is refused too
    bad = client.post(url, files={"image": ("n.png", image, "image/png")}, data={"max_tokens": "x"})
    assert bad.status_code == 400 and "max_tokens" in bad.text
    not_file = client.post(url, data={"image": "aGVsbG8="}, files={"x": ("x", b"", "text/plain")})
    assert not_file.status_code == 400
    doc = client.get(f"{http.url}/openapi.json").json()
    client.close()
    content = doc["paths"]["/v1/observe"]["post"]["requestBody"]["content"]
    assert content["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"


def test_media_without_a_perception_service_is_unavailable(private_reflex: Reflex) -> None:
    cognition = start_cognition(private_reflex, perceive_timeout_s=2.0, http=True)
    try:
        with pytest.raises(RequestFailed) as err:
            observe(cognition, image=b64_media(note(["hello"])))
        assert err.value.reply.code == "unavailable"
        assert "emily serve perception" in err.value.reply.message
        assert cognition.service.http is not None
        status, _ = post(
            f"{cognition.service.http.url}/v1/observe", {"image": b64_media(note(["x"]))}
        )
        assert status == 503
    finally:
        cognition.close()
