"""The memory HTTP API over the real memory service (Postgres + pgvector, MiniLM)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from emily.memory.config import MemoryConfig
from emily.memory.http import create_app, start_http
from emily.observe.http import HTTPServer
from tests.conftest import free_port
from tests.fuzz import fuzz_route, http_cases, http_status
from tests.memory.conftest import Running

pytestmark = pytest.mark.slow
TOKEN = "test-only-token"


@dataclass
class Api:
    url: str
    running: Running

    def req(self, method: str, path: str, **kw: object) -> httpx.Response:
        return httpx.request(method, self.url + path, timeout=60, **kw)  # type: ignore[arg-type]


@pytest.fixture
def api(running: Running) -> Iterator[Api]:
    server = HTTPServer(create_app(running.service, api_key=None), "127.0.0.1", free_port())
    assert server.wait_started()
    yield Api(server.url, running)
    server.close()


def store(api: Api, user: str, *texts: str) -> list[str]:
    eps = [{"text": t, "user": user} for t in texts]
    r = api.req("POST", "/v1/memories", json={"episodes": eps})
    assert r.status_code == 201, r.text
    return list(r.json()["ids"])


def search(api: Api, user: str, text: str, k: int = 3) -> list[dict]:
    r = api.req("POST", "/v1/memories/search", json={"text": text, "user": user, "k": k})
    assert r.status_code == 200, r.text
    return list(r.json()["hits"])


def test_store_search_export_and_stats_are_scoped_by_user(api: Api) -> None:
    store(api, "alice", "My dog is called Rex.", "I work at the bakery on Elm Street.")
    store(api, "bob", "My dog is called Bruno.")
    hits = search(api, "alice", "what is my dog's name?")
    assert hits[0]["episode"]["text"] == "My dog is called Rex."
    assert {h["episode"]["user"] for h in hits} == {"alice"}
    assert [h["episode"]["text"] for h in search(api, "bob", "dog")] == ["My dog is called Bruno."]
    page = api.req("GET", "/v1/memories/export", params={"user": "alice"}).json()
    assert sorted(e["text"] for e in page["episodes"]) == [
        "I work at the bakery on Elm Street.",
        "My dog is called Rex.",
    ]
    assert page["next"] is None
    stats = api.req("GET", "/v1/stats").json()
    assert stats["episodes"] == 3


def test_export_pages_with_after(api: Api) -> None:
    ids = store(api, "carol", *(f"Note number {i}." for i in range(5)))
    first = api.req("GET", "/v1/memories/export", params={"user": "carol", "limit": 2}).json()
    assert [e["id"] for e in first["episodes"]] == sorted(ids)[:2] and first["next"]
    rest = api.req(
        "GET", "/v1/memories/export", params={"user": "carol", "after": first["next"]}
    ).json()
    assert len(rest["episodes"]) == 3 and rest["next"] is None


def test_delete_forgets_one_episode_only_for_its_user(api: Api) -> None:
    (rex,) = store(api, "alice", "My dog is called Rex.")
    r = api.req("DELETE", f"/v1/memories/{rex}", params={"user": "bob"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = api.req("DELETE", f"/v1/memories/{rex}", params={"user": "alice"})
    assert r.status_code == 200 and r.json()["forgotten"] == [rex]
    assert search(api, "alice", "dog") == []
    assert api.req("DELETE", f"/v1/memories/{rex}", params={"user": "alice"}).status_code == 404


def test_forget_by_match_with_a_dry_run_first(api: Api) -> None:
    store(api, "alice", "My password is hunter2.", "The sky was grey today.")
    body = {"user": "alice", "match": "PASSWORD", "dry_run": True}
    dry = api.req("POST", "/v1/memories/forget", json=body).json()
    assert len(dry["forgotten"]) == 1 and dry["dry_run"]
    assert len(search(api, "alice", "password", k=5)) == 2
    done = api.req("POST", "/v1/memories/forget", json={**body, "dry_run": False}).json()
    assert done["forgotten"] == dry["forgotten"]
    assert [h["episode"]["text"] for h in search(api, "alice", "password", k=5)] == [
        "The sky was grey today."
    ]


def test_patch_corrects_the_text_and_recall_follows(api: Api) -> None:
    (ep,) = store(api, "alice", "My dog is called Rex.")
    r = api.req("PATCH", f"/v1/memories/{ep}", json={"user": "alice", "text": "My dog is Max."})
    assert r.status_code == 200, r.text
    assert r.json()["episode"]["text"] == "My dog is Max."
    assert search(api, "alice", "dog")[0]["episode"]["text"] == "My dog is Max."
    other = api.req("PATCH", f"/v1/memories/{ep}", json={"user": "bob", "text": "x"})
    assert other.status_code == 404


def test_facts_answers_for_a_user(api: Api) -> None:
    r = api.req("GET", "/v1/facts", params={"user": "alice", "text": "dog"})
    assert r.status_code == 200 and r.json()["facts"] == []
    r = api.req("GET", "/v1/facts", params={"user": "alice"})
    assert r.status_code == 400 and "text, subject or relation" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "kw", "status", "says"),
    [
        ("POST", "/v1/memories", {"content": b"{not json"}, 400, "JSON"),
        ("POST", "/v1/memories", {"json": {"episodes": []}}, 400, "episodes"),
        (
            "POST",
            "/v1/memories",
            {"json": {"episodes": [{"text": "x", "user": "a b"}]}},
            400,
            "use",
        ),
        ("POST", "/v1/memories/search", {"json": {"user": "a"}}, 400, "text or vector"),
        ("POST", "/v1/memories/forget", {"json": {"user": "a"}}, 400, "ids or match"),
        ("DELETE", "/v1/memories/not-a-uuid", {}, 400, "episode_id"),
        ("PATCH", f"/v1/memories/{uuid.UUID(int=1)}", {"json": {"text": ""}}, 400, "text"),
        ("PATCH", f"/v1/memories/{uuid.UUID(int=2)}", {"json": {"text": "x"}}, 404, "no episode"),
        ("GET", "/v1/memories/export", {"params": {"limit": 0}}, 400, "limit"),
        ("GET", "/v1/nowhere", {}, 404, "Not Found"),
    ],
)
def test_bad_requests_get_one_error_envelope(
    api: Api, method: str, path: str, kw: dict, status: int, says: str
) -> None:
    r = api.req(method, path, **kw)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "code", "param"} and says in err["message"], err


def test_bearer_token_guards_v1_but_not_health(running: Running, tmp_path: Path) -> None:
    key = tmp_path / "memory.token"
    key.write_text(TOKEN + "\n")
    cfg = replace(MemoryConfig(), http_port=free_port(), api_key_file=key)
    server = start_http(running.service, cfg)
    assert server is not None
    try:
        r = httpx.get(server.url + "/v1/stats", timeout=30)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.get(server.url + "/v1/stats", headers=wrong, timeout=30).status_code == 401
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(server.url + "/v1/stats", headers=right, timeout=30).status_code == 200
        assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200
    finally:
        server.close()


def test_a_port_in_use_leaves_the_bus_serving(api: Api) -> None:
    port = int(api.url.rsplit(":", 1)[1])
    cfg = replace(MemoryConfig(), http_port=port)
    assert start_http(api.running.service, cfg) is None


def test_openapi_lists_every_route_and_docs_load_nothing_from_elsewhere(api: Api) -> None:
    doc = api.req("GET", "/openapi.json").json()
    ops = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert ops >= {
        ("POST", "/v1/memories"),
        ("POST", "/v1/memories/search"),
        ("POST", "/v1/memories/forget"),
        ("DELETE", "/v1/memories/{episode_id}"),
        ("PATCH", "/v1/memories/{episode_id}"),
        ("GET", "/v1/memories/export"),
        ("GET", "/v1/facts"),
        ("GET", "/v1/stats"),
    }
    body = doc["paths"]["/v1/memories"]["post"]["requestBody"]["content"]["application/json"]
    assert "episodes" in body["schema"]["properties"]
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(doc)))
    assert "EpisodeIn" in refs and refs <= set(doc["components"]["schemas"])
    page = api.req("GET", "/docs").text
    assert "/v1/memories/search" in page and "http" not in page.replace("openapi.json", "")


def test_every_route_answers_1000_fuzzed_requests_without_a_server_error(api: Api) -> None:
    doc = api.req("GET", "/openapi.json").json()
    cases = http_cases(doc)
    assert len(cases) >= 9
    for method, path, bodies in cases:
        statuses = fuzz_route(api.url, method, path, bodies)
        if method == "POST":
            assert 400 in statuses, (path, sorted(set(statuses)))
    status, raw = http_status(api.url, "GET", "/v1/stats", b"")
    assert status == 200 and json.loads(raw)["episodes"] >= 0


def test_emily_serve_memory_serves_the_api_on_its_port(tmp_path: Path) -> None:
    port = free_port()
    key = tmp_path / "token"
    key.write_text(TOKEN)
    env = dict(
        os.environ,
        EMILY_STATE_DIR=str(tmp_path / "state"),
        EMILY_BUS__NODE="httpproc",
        EMILY_BUS__LISTEN=json.dumps([f"tcp/127.0.0.1:{free_port()}"]),
        EMILY_BUS__CONNECT="[]",
        EMILY_MEMORY__METRICS_PORT="0",
        EMILY_MEMORY__HTTP_PORT=str(port),
        EMILY_MEMORY__API_KEY_FILE=str(key),
    )
    proc = subprocess.Popen([sys.executable, "-m", "emily", "serve", "memory"], env=env)
    url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {TOKEN}"}
    try:
        deadline = time.monotonic() + 300  # the embedded Postgres starts first
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "no HTTP API"
            time.sleep(0.5)
        body = {"episodes": [{"text": "The lighthouse keeper fed the gulls."}]}
        r = httpx.post(url + "/v1/memories", json=body, headers=auth, timeout=60)
        assert r.status_code == 201, r.text
        r = httpx.post(
            url + "/v1/memories/search", json={"text": "seabirds"}, headers=auth, timeout=60
        )
        assert r.json()["hits"][0]["episode"]["text"] == "The lighthouse keeper fed the gulls."
        assert httpx.get(url + "/v1/stats", timeout=30).status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0
