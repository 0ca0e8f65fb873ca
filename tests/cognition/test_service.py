"""The cognition service over real Zenoh and HTTP, with memory and inference absent."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import zenoh

from emily.bus import Keys
from emily.bus.endpoints import OBSERVE, WORKSPACE_BROADCAST
from emily.bus.messages import decode, encode
from emily.bus.rpc import RequestFailed, call
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest, WorkspaceBroadcast
from emily.bus.schemas.memory import RecallRequest
from emily.cognition.reflex import Reflex
from emily.errors import ConfigError
from tests.cognition.conftest import RunningCognition, start_cognition

KEYS = Keys("test")
OBSERVE_KEY = OBSERVE.key(KEYS)


def post(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_observe_over_zenoh_with_services_absent(cognition: RunningCognition) -> None:
    reply = call(
        cognition.client, OBSERVE_KEY, ObserveRequest(text="hi there"), ObserveReply, timeout_s=30
    )
    assert reply.trace.tier == "reflex" and reply.response
    reply = call(
        cognition.client,
        OBSERVE_KEY,
        ObserveRequest(text="what is the boiling point of water at altitude"),
        ObserveReply,
        timeout_s=30,
    )
    assert "memory" in reply.trace.missing
    assert reply.trace.tier != "deliberation"
    # no memory token on the bus: recall was skipped at once, not waited for
    assert any("no memory service" in n for n in reply.trace.notes)
    # the episode waits for memory instead of being dropped
    assert reply.trace.episode == "queued"


def test_bad_observations_get_error_replies_and_the_service_keeps_serving(
    cognition: RunningCognition,
) -> None:
    for payload, field in (
        (b'{"text": ""}', "text"),
        (b"not json", "JSON"),
        (b'{"text": "hi", "max_tokens": -1}', "max_tokens"),
    ):
        replies = list(cognition.client.get(OBSERVE_KEY, payload=payload, timeout=10))
        assert len(replies) == 1 and replies[0].err is not None
        err = json.loads(replies[0].err.payload.to_bytes())
        assert err["code"] == "bad_request" and field in err["message"]
    ok = call(
        cognition.client, OBSERVE_KEY, ObserveRequest(text="thanks"), ObserveReply, timeout_s=30
    )
    assert ok.trace.reflex.intent == "thanks"


def test_http_observe_metrics_and_health(cognition: RunningCognition) -> None:
    http = cognition.service.http
    assert http is not None
    status, body = post(f"{http.url}/v1/observe", b'{"text": "who are you"}')
    assert status == 200
    reply = decode(ObserveReply, body)
    assert reply.trace.reflex.intent == "identity"
    status, body = post(f"{http.url}/v1/observe", b'{"text": "hi", "mood": 3}')
    assert status == 400 and "mood" in str(body)
    status, body = post(f"{http.url}/v1/observe", b"[1, 2]")
    assert status == 400
    with urllib.request.urlopen(f"{http.url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert 'emily_cognition_stage_seconds_bucket{le="0.0001",stage="reflex"}' in text
    assert "emily_cognition_bad_requests_total 2.0" in text
    with urllib.request.urlopen(f"{http.url}/healthz", timeout=10) as resp:
        assert json.loads(resp.read()) == {"status": "ok"}


def test_http_replies_while_its_cycle_s_deferred_work_is_stalled(
    cognition: RunningCognition, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fault: every cycle's after-reply work (delivering its episodes, which waits
    while memory is behind) blocks until released. The HTTP reply still comes, and the
    work then runs, once, for that cycle."""
    http = cognition.service.http
    assert http is not None
    release = threading.Event()
    finished: list[str] = []
    real_finish = cognition.service.cognition.finish

    def stalled_finish(cyc: Any) -> None:
        release.wait()
        real_finish(cyc)
        finished.append(cyc.request.text)

    monkeypatch.setattr(cognition.service.cognition, "finish", stalled_finish)
    try:
        status, body = post(f"{http.url}/v1/observe", b'{"text": "who are you"}')
        assert status == 200 and decode(ObserveReply, body).trace.reflex.intent == "identity"
        assert finished == []
    finally:
        release.set()
    deadline = time.monotonic() + 30
    while not finished and time.monotonic() < deadline:
        time.sleep(0.05)
    assert finished == ["who are you"]


def test_http_observe_takes_user_and_session_and_recall_reads_only_their_statements(
    cognition: RunningCognition, injected_slow_memory: list[RecallRequest]
) -> None:
    http = cognition.service.http
    assert http is not None
    with urllib.request.urlopen(f"{http.url}/openapi.json", timeout=10) as resp:
        doc = json.loads(resp.read())
    body_schema = doc["paths"]["/v1/observe"]["post"]["requestBody"]["content"]
    props = body_schema["application/json"]["schema"]["properties"]
    assert {"user", "session", "feedback", "feedback_for"} <= set(props)
    question = {"text": "What is my dog called", "user": "ann", "session": "s-1"}
    status, body = post(
        f"{http.url}/v1/observe", json.dumps(question | {"allow_llm": False}).encode()
    )
    assert status == 200, body
    t = decode(ObserveReply, json.dumps(body).encode()).trace
    assert t.act == "question" and t.episode_id == t.cycle_id and t.answer_id != t.cycle_id
    sent = injected_slow_memory[-1]  # what cognition asked memory for
    assert sent.user == "ann" and sent.search == "hybrid" and sent.vector is not None
    assert sent.filters.roles == ["user"] and sent.filters.acts == ["statement"]
    status, body = post(f"{http.url}/v1/observe", b'{"text": "hi", "user": "not a name"}')
    assert status == 400 and "user" in str(body)


def test_workspace_broadcasts_reach_a_zenoh_subscriber(cognition: RunningCognition) -> None:
    got: list[WorkspaceBroadcast] = []
    arrived = threading.Event()

    def on_sample(sample: zenoh.Sample) -> None:
        got.append(decode(WorkspaceBroadcast, sample.payload.to_bytes()))
        arrived.set()

    sub = cognition.client.declare_subscriber(WORKSPACE_BROADCAST.key(KEYS), on_sample)
    try:
        time.sleep(0.2)  # let the subscription propagate to the publisher's peer
        call(
            cognition.client,
            OBSERVE_KEY,
            ObserveRequest(text="good morning"),
            ObserveReply,
            timeout_s=30,
        )
        assert arrived.wait(10)
        assert got[0].ignited and 0 < len(got[0].items) <= 7
    finally:
        sub.undeclare()


def test_injected_slow_memory_never_delays_the_reflex_and_recall_meets_its_deadline(
    cognition: RunningCognition, injected_slow_memory: list[RecallRequest]
) -> None:
    reply = call(
        cognition.client, OBSERVE_KEY, ObserveRequest(text="hello"), ObserveReply, timeout_s=30
    )
    assert reply.trace.tier == "reflex"
    assert injected_slow_memory == []  # the reflex answered without asking memory
    reply = call(
        cognition.client,
        OBSERVE_KEY,
        ObserveRequest(text="what did the plumber say about the boiler"),
        ObserveReply,
        timeout_s=30,
    )
    assert len(injected_slow_memory) == 1
    assert "memory" in reply.trace.missing
    # the recall stage gave up at its deadline (0.5 s), with the reason in the trace
    assert any("0.5 s deadline" in n for n in reply.trace.notes), reply.trace.notes


def test_two_services_on_one_node_do_not_mix(private_reflex: Reflex) -> None:
    other = start_cognition(private_reflex, node="other")
    try:
        reply = call(
            other.client,
            OBSERVE.key(Keys("other")),
            ObserveRequest(text="bye for now"),
            ObserveReply,
            timeout_s=30,
        )
        assert reply.trace.reflex.intent == "farewell"
        with pytest.raises(RequestFailed):
            call(
                other.client,
                OBSERVE.key(Keys("other")),
                ObserveRequest.model_construct(text=""),
                ObserveReply,
                timeout_s=10,
            )
    finally:
        other.close()
    assert encode(ObserveRequest(text="x"))


HOSTILE = (
    (b'{"text": "a\\u0000b"}', "NUL"),
    (b'{"text": "a\\ud800b"}', "text"),
    (b'{"text": "hi", "context": {"note": "' + b"n" * 2000 + b'"}}', "context"),
    (b'{"text": "hi", "context": {"n": ' + b"9" * 5000 + b"}}", "JSON"),
    (b'{"text": "hi", "context": ' + b"[" * 1500 + b"]" * 1500 + b"}", "nested"),
)


def test_hostile_observations_get_bad_request_over_the_bus_and_400_over_http(
    cognition: RunningCognition,
) -> None:
    """NUL, a lone surrogate, a 2,000-character context value, a 5,000-digit integer and
    JSON nested 1,500 deep: each is refused with a message naming what is wrong, over
    the bus and HTTP; nothing is stored, and the service still answers."""
    http = cognition.service.http
    assert http is not None
    for payload, says in HOSTILE:
        replies = list(cognition.client.get(OBSERVE_KEY, payload=payload, timeout=10))
        assert len(replies) == 1 and replies[0].err is not None, says
        err = json.loads(replies[0].err.payload.to_bytes())
        assert err["code"] == "bad_request" and says in err["message"], err
        status, body = post(f"{http.url}/v1/observe", payload)
        assert status == 400 and says in str(body), (says, str(body)[:200])
    status, body = post(f"{http.url}/v1/observe", b'{"text": "thanks"}')
    assert status == 200 and decode(ObserveReply, body).trace.reflex.intent == "thanks"


def test_a_configured_bearer_token_guards_v1_and_leaves_health_open(
    private_reflex: Reflex, tmp_path: Path
) -> None:
    key_file = tmp_path / "cognition-token"
    key_file.write_text("test-only-token\n")
    running = start_cognition(private_reflex, http=True, api_key_file=key_file)
    try:
        http = running.service.http
        assert http is not None
        status, body = post(f"{http.url}/v1/observe", b'{"text": "thanks"}')
        assert status == 401 and body["error"]["code"] == "unauthorized"  # type: ignore[index]
        req = urllib.request.Request(
            f"{http.url}/v1/observe",
            data=b'{"text": "thanks"}',
            headers={"Authorization": "Bearer test-only-token"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
        wrong = urllib.request.Request(
            f"{http.url}/v1/observe", data=b"{}", headers={"Authorization": "Bearer nope"}
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(wrong, timeout=30)
        assert err.value.code == 401
        with urllib.request.urlopen(f"{http.url}/healthz", timeout=10) as resp:
            assert resp.status == 200
    finally:
        running.close()


def test_an_empty_token_file_is_a_clear_error(private_reflex: Reflex, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    before = {t.ident for t in threading.enumerate()}
    with pytest.raises(ConfigError, match=r"api_key_file .* is empty"):
        start_cognition(private_reflex, http=True, api_key_file=empty)
    # found before a session was opened: no Zenoh callback thread is left behind
    left = [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert [name for name in left if "pyo3" in name] == []
