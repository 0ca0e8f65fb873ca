"""The zenohd configuration (modules/services/zenohd.json5, as modules/lib/zenohd-config.nix
hands it to zenohd) run by a real Zenoh router on loopback, with certificates that
hosts/cloudlab/bus-certs.sh makes for the test: who may connect, and what each service
may declare and query under the router's access control."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zenoh

from emily.bus.session import BusConfig, open_session
from emily.config import load_section
from tests.conftest import REPO, free_port
from tests.host.tools import run
from tests.nix.nixeval import nix_eval

CERTS = REPO / "hosts" / "cloudlab" / "bus-certs.sh"
DATA = REPO / "modules" / "services" / "zenohd.json5"
SERVICES = ("memory", "inference", "perception", "cognition", "cli")


def bus_certs(*args: str | Path) -> None:
    out = run(["bash", CERTS, *args])
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA with a router and a certificate per service; a second CA in ``other/``; a
    certificate of the right CA whose name is no subject (``stranger``)."""
    d = tmp_path_factory.mktemp("bus-certs")
    bus_certs("ca", d)
    bus_certs("issue", d, "router", "IP:127.0.0.1")
    for name in (*SERVICES, "stranger"):
        bus_certs("issue", d, name)
    bus_certs("ca", d / "other")
    bus_certs("issue", d / "other", "cognition")
    return d


def router_settings(port: int, certs: Path, peers: tuple[int, ...] = ()) -> dict[str, object]:
    """What the Nix module gives zenohd, with this test's ports and certificate paths;
    ``peers``: ports of other routers to mesh with."""
    connect = " ".join(f'"tls/127.0.0.1:{p}"' for p in peers)
    got = nix_eval(
        "(import ./modules/lib/zenohd-config.nix).settings {"
        f' listen = [ "tls/127.0.0.1:{port}" ];'
        f" connect = [ {connect} ];"
        f' rootCa = "{certs}/ca.crt";'
        f' certificate = "{certs}/router.crt";'
        f' privateKey = "{certs}/router.key"; }}'
    )
    assert isinstance(got, dict)
    return got


@pytest.fixture(scope="module")
def router(certs: Path) -> Iterator[str]:
    """A Zenoh router running the host's configuration; yields its endpoint."""
    port = free_port()
    session = zenoh.open(zenoh.Config.from_json5(json.dumps(router_settings(port, certs))))
    yield f"tls/127.0.0.1:{port}"
    session.close()


@pytest.fixture(scope="module")
def second_router(router: str, certs: Path) -> Iterator[str]:
    """The router of a second host, meshed with ``router`` over mutual TLS."""
    port = free_port()
    first = int(router.rsplit(":", 1)[1])
    settings = router_settings(port, certs, peers=(first,))
    session = zenoh.open(zenoh.Config.from_json5(json.dumps(settings)))
    yield f"tls/127.0.0.1:{port}"
    session.close()


def client(endpoint: str, ca: Path, cert: Path | None = None) -> zenoh.Session:
    """A client session as the services open it: mutual TLS to the router."""
    tls: dict[str, object] = {"root_ca_certificate": str(ca), "enable_mtls": True}
    if cert is not None:
        tls["connect_certificate"] = str(cert.with_suffix(".crt"))
        tls["connect_private_key"] = str(cert.with_suffix(".key"))
    cfg = zenoh.Config()
    cfg.insert_json5("mode", '"client"')
    cfg.insert_json5("connect/endpoints", json.dumps([endpoint]))
    cfg.insert_json5("connect/timeout_ms", "3000")
    cfg.insert_json5("scouting/multicast/enabled", "false")
    cfg.insert_json5("transport/link/tls", json.dumps(tls))
    return zenoh.open(cfg)


@pytest.fixture(scope="module")
def sessions(router: str, certs: Path) -> Iterator[dict[str, zenoh.Session]]:
    """One session per subject (and the stranger), all connected to the router."""
    opened = {
        name: client(router, certs / "ca.crt", certs / name) for name in (*SERVICES, "stranger")
    }
    yield opened
    for s in opened.values():
        s.close()


def answers(session: zenoh.Session, key: str) -> list[bytes]:
    """Payloads of every ok reply to ``key``."""
    return [r.ok.payload.to_bytes() for r in session.get(key, timeout=2.0) if r.ok is not None]


def until_answered(session: zenoh.Session, key: str) -> list[bytes]:
    """Replies to ``key`` once the router has propagated the queryable (declarations are
    asynchronous); fails after 20 tries."""
    for _ in range(20):
        got = answers(session, key)
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"no reply on {key}")


def serve(session: zenoh.Session, key: str, payload: bytes) -> zenoh.Queryable[None]:
    handler: Callable[[zenoh.Query], None] = lambda q: q.reply(q.key_expr, payload)  # noqa: E731
    return session.declare_queryable(key, handler)


def test_the_data_file_reads_the_same_in_nix_and_in_zenoh() -> None:
    ours = nix_eval(
        "(import ./modules/lib/zenohd-config.nix).readJson5 ./modules/services/zenohd.json5"
    )
    theirs = json.loads(zenoh.Config.from_file(str(DATA)).get_json("access_control"))
    assert theirs["default_permission"] == ours["access_control"]["default_permission"] == "deny"
    assert [(r["id"], r["key_exprs"], r["messages"]) for r in theirs["rules"]] == [
        (r["id"], r["key_exprs"], r["messages"]) for r in ours["access_control"]["rules"]
    ]


def test_nix_refuses_a_plain_tcp_endpoint(certs: Path) -> None:
    with pytest.raises(RuntimeError, match="mutually authenticated TLS"):
        nix_eval(
            "(import ./modules/lib/zenohd-config.nix).settings {"
            ' listen = [ "tcp/127.0.0.1:7447" ]; rootCa = "/a"; certificate = "/b";'
            ' privateKey = "/c"; }'
        )


def test_a_client_without_a_certificate_is_refused(router: str, certs: Path) -> None:
    with pytest.raises(zenoh.ZError, match="Unable to connect"):
        client(router, certs / "ca.crt")


def test_a_certificate_from_another_ca_is_refused(router: str, certs: Path) -> None:
    # it even carries a service's name
    with pytest.raises(zenoh.ZError, match="Unable to connect"):
        client(router, certs / "ca.crt", certs / "other" / "cognition")


def test_allowed_queries_go_through(sessions: dict[str, zenoh.Session]) -> None:
    recall = serve(sessions["memory"], "emily/n1/memory/recall", b"hits")
    info = serve(sessions["inference"], "emily/n1/inference/info", b"model")
    observe = serve(sessions["cognition"], "emily/n1/cognition/observe", b"action")
    heard = serve(sessions["perception"], "emily/n1/perception/transcribe", b"words")
    assert until_answered(sessions["cognition"], "emily/n1/memory/recall") == [b"hits"]
    assert until_answered(sessions["cognition"], "emily/n1/inference/info") == [b"model"]
    assert until_answered(sessions["cognition"], "emily/n1/perception/transcribe") == [b"words"]
    assert until_answered(sessions["cli"], "emily/n1/perception/transcribe") == [b"words"]
    assert until_answered(sessions["cli"], "emily/n1/cognition/observe") == [b"action"]
    for q in (recall, info, observe, heard):
        q.undeclare()


def test_a_queryable_outside_the_grant_is_denied(sessions: dict[str, zenoh.Session]) -> None:
    # memory poses as inference on node n2; the real inference serves node n3
    rogue = serve(sessions["memory"], "emily/n2/inference/info", b"rogue")
    real = serve(sessions["inference"], "emily/n3/inference/info", b"real")
    # a name the CA signed but no subject has: default deny
    stranger = serve(sessions["stranger"], "emily/n2/memory/recall", b"stranger")
    assert until_answered(sessions["cognition"], "emily/n3/inference/info") == [b"real"]
    assert answers(sessions["cognition"], "emily/n2/inference/info") == []
    assert answers(sessions["cognition"], "emily/n2/memory/recall") == []
    for q in (rogue, real, stranger):
        q.undeclare()


def test_a_service_may_query_only_what_it_uses(sessions: dict[str, zenoh.Session]) -> None:
    observe = serve(sessions["cognition"], "emily/n4/cognition/observe", b"action")
    assert until_answered(sessions["cli"], "emily/n4/cognition/observe") == [b"action"]
    # memory, inference and perception ask nobody (cognition's own queries never reach
    # the router)
    for name in ("memory", "inference", "perception", "stranger"):
        assert answers(sessions[name], "emily/n4/cognition/observe") == [], name
    observe.undeclare()


def test_only_the_cli_administers_memory(sessions: dict[str, zenoh.Session]) -> None:
    forget = serve(sessions["memory"], "emily/n6/memory/forget", b"forgotten")
    facts = serve(sessions["memory"], "emily/n6/memory/facts", b"facts")
    assert until_answered(sessions["cli"], "emily/n6/memory/forget") == [b"forgotten"]
    assert until_answered(sessions["cognition"], "emily/n6/memory/facts") == [b"facts"]
    # cognition reads facts but may not forget; perception and inference ask memory nothing
    assert answers(sessions["cognition"], "emily/n6/memory/forget") == []
    for name in ("inference", "perception", "stranger"):
        assert answers(sessions[name], "emily/n6/memory/facts") == [], name
    forget.undeclare()
    facts.undeclare()


def test_memory_may_ask_inference_to_generate_only(sessions: dict[str, zenoh.Session]) -> None:
    generate = serve(sessions["inference"], "emily/n7/inference/generate", b"json")
    chat = serve(sessions["inference"], "emily/n7/inference/chat", b"text")
    assert until_answered(sessions["memory"], "emily/n7/inference/generate") == [b"json"]
    assert answers(sessions["memory"], "emily/n7/inference/chat") == []
    generate.undeclare()
    chat.undeclare()


def test_perception_hears_memory_operations_only(sessions: dict[str, zenoh.Session]) -> None:
    heard: list[bytes] = []

    def note(sample: zenoh.Sample) -> None:
        heard.append(bytes(sample.payload.to_bytes()))

    subs = [
        sessions["perception"].declare_subscriber(f"emily/n8/events/{topic}", note)
        for topic in ("memory.operations", "workspace.broadcast")
    ]
    deadline = time.monotonic() + 10
    while b"forget" not in heard and time.monotonic() < deadline:
        sessions["memory"].put("emily/n8/events/memory.operations", b"forget")
        sessions["cognition"].put("emily/n8/events/workspace.broadcast", b"broadcast")
        time.sleep(0.2)
    assert b"forget" in heard
    assert b"broadcast" not in heard
    for sub in subs:
        sub.undeclare()


def test_perception_reads_memory_events_only(sessions: dict[str, zenoh.Session]) -> None:
    # a forget's media hash is in the event log: perception reads it, and nothing else
    events = serve(sessions["memory"], "emily/n9/memory/events", b"log")
    forget = serve(sessions["memory"], "emily/n9/memory/forget", b"forgotten")
    assert until_answered(sessions["perception"], "emily/n9/memory/events") == [b"log"]
    assert answers(sessions["perception"], "emily/n9/memory/forget") == []
    events.undeclare()
    forget.undeclare()


def test_liveliness_tokens_only_under_the_own_name(sessions: dict[str, zenoh.Session]) -> None:
    own = sessions["memory"].liveliness().declare_token("emily/n5/health/memory")
    posing = sessions["memory"].liveliness().declare_token("emily/n5/health/inference")

    def alive() -> list[str]:
        replies = sessions["cognition"].liveliness().get("emily/n5/health/*", timeout=2.0)
        return sorted(str(r.ok.key_expr) for r in replies if r.ok is not None)

    for _ in range(20):
        if alive():
            break
        time.sleep(0.1)
    assert alive() == ["emily/n5/health/memory"]
    own.undeclare()
    posing.undeclare()


def test_routers_mesh_and_keep_the_grants(
    second_router: str, certs: Path, sessions: dict[str, zenoh.Session]
) -> None:
    # memory and a posing stranger on the second host; cognition on the first
    memory = client(second_router, certs / "ca.crt", certs / "memory")
    stranger = client(second_router, certs / "ca.crt", certs / "stranger")
    try:
        recall = serve(memory, "emily/store/memory/recall", b"remote hits")
        rogue = serve(stranger, "emily/store/memory/stats", b"rogue")
        token = memory.liveliness().declare_token("emily/store/health/memory")
        assert until_answered(sessions["cognition"], "emily/store/memory/recall") == [
            b"remote hits"
        ]
        assert answers(sessions["cognition"], "emily/store/memory/stats") == []
        replies = sessions["cognition"].liveliness().get("emily/store/health/*", timeout=2.0)
        assert [str(r.ok.key_expr) for r in replies if r.ok is not None] == [
            "emily/store/health/memory"
        ]
        for entity in (recall, rogue, token):
            entity.undeclare()
    finally:
        memory.close()
        stranger.close()


def service_session(service: str, router: str, certs: Path) -> zenoh.Session:
    """A session opened the way a host unit opens it: the environment the Nix unit
    helper renders, read by emily.config, opened by emily.bus."""
    env = nix_eval(
        "(import ./modules/lib/settings.nix).serviceEnv {"
        f' service = "{service}"; node = "cloudlab"; router = "{router}";'
        f' tls = {{ rootCa = "{certs}/ca.crt"; certificate = "{certs}/{service}.crt";'
        f' privateKey = "{certs}/{service}.key"; }}; }}'
    )
    return open_session(load_section(BusConfig, "bus", data={}, environ=env))


def test_services_configured_by_the_unit_environment_talk_through_the_router(
    router: str, certs: Path
) -> None:
    memory = service_session("memory", router, certs)
    cognition = service_session("cognition", router, certs)
    try:
        recall = serve(memory, "emily/cloudlab/memory/recall", b"from the unit env")
        assert until_answered(cognition, "emily/cloudlab/memory/recall") == [b"from the unit env"]
        recall.undeclare()
    finally:
        memory.close()
        cognition.close()
