"""Request/reply over real Zenoh sessions on loopback."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import zenoh
from pydantic import Field

from emily.bus import BusConfig, Keys, open_session
from emily.bus.messages import ErrorReply, Message
from emily.bus.rpc import Continuation, RequestFailed, Server, call, stream, wait_for_server
from emily.errors import BusError

KEYS = Keys("test")


class Echo(Message):
    text: str = Field(max_length=100)
    repeat: int = Field(default=1, ge=1, le=10)


class Chunk(Message):
    text: str
    index: int


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll ``predicate`` (work after a reply runs once the client already has it)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def echo(req: Echo) -> Chunk:
    if req.text == "boom":
        raise RuntimeError("handler blew up on purpose")
    if req.text == "busy":
        raise RequestFailed(ErrorReply(code="busy", message="queue full", retry_after_s=0.5))
    return Chunk(text=req.text, index=0)


def chunks(req: Echo) -> Iterator[Chunk]:
    for i in range(req.repeat):
        yield Chunk(text=req.text, index=i)


@pytest.fixture(scope="module")
def servers(zenoh_pair: tuple[zenoh.Session, zenoh.Session]) -> Iterator[zenoh.Session]:
    server_side, client_side = zenoh_pair
    started = [
        Server(server_side, KEYS.query("test", "echo"), Echo, echo),
        Server(server_side, KEYS.query("test", "stream"), Echo, chunks),
    ]
    for s in started:
        assert wait_for_server(client_side, s.key, timeout_s=5)
    yield client_side
    for s in started:
        s.close()


def test_call_roundtrip(servers: zenoh.Session) -> None:
    got = call(servers, KEYS.query("test", "echo"), Echo(text="hi"), Chunk, timeout_s=5)
    assert got == Chunk(text="hi", index=0)


def test_stream_yields_every_chunk_in_order(servers: zenoh.Session) -> None:
    got = list(stream(servers, KEYS.query("test", "stream"), Echo(text="s", repeat=5), Chunk))
    assert [c.index for c in got] == [0, 1, 2, 3, 4]


def test_call_rejects_a_stream(servers: zenoh.Session) -> None:
    with pytest.raises(BusError, match="sent 3 replies"):
        call(servers, KEYS.query("test", "stream"), Echo(text="s", repeat=3), Chunk)


def test_bad_payload_gets_error_reply_and_server_keeps_serving(servers: zenoh.Session) -> None:
    class Wrong(Message):
        text: str
        repeat: int

    with pytest.raises(RequestFailed) as info:
        call(servers, KEYS.query("test", "echo"), Wrong(text="x", repeat=99), Chunk)
    assert info.value.reply.code == "bad_request"
    assert "repeat" in info.value.reply.message
    assert call(servers, KEYS.query("test", "echo"), Echo(text="after"), Chunk).text == "after"


def test_raw_garbage_payload_gets_error_reply(servers: zenoh.Session) -> None:
    replies = list(servers.get(KEYS.query("test", "echo"), payload=b"\x00not json", timeout=5))
    assert len(replies) == 1 and replies[0].err is not None
    assert b"not valid UTF-8 JSON" in replies[0].err.payload.to_bytes()


def test_injected_handler_fault_is_reported_not_fatal(servers: zenoh.Session) -> None:
    with pytest.raises(RequestFailed, match="internal: RuntimeError: handler blew up"):
        call(servers, KEYS.query("test", "echo"), Echo(text="boom"), Chunk)
    assert call(servers, KEYS.query("test", "echo"), Echo(text="ok"), Chunk).text == "ok"


def test_typed_failure_passes_through(servers: zenoh.Session) -> None:
    with pytest.raises(RequestFailed) as info:
        call(servers, KEYS.query("test", "echo"), Echo(text="busy"), Chunk)
    assert info.value.reply.code == "busy" and info.value.reply.retry_after_s == 0.5


def test_no_server_is_a_clear_error(servers: zenoh.Session) -> None:
    with pytest.raises(BusError, match="no reply on emily/test/nobody/home"):
        call(servers, KEYS.query("nobody", "home"), Echo(text="x"), Chunk, timeout_s=0.5)


def test_concurrent_callers_all_answered(servers: zenoh.Session) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        got = call(servers, KEYS.query("test", "echo"), Echo(text=f"c{i}"), Chunk)
        with lock:
            results.append(got.text)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(f"c{i}" for i in range(16))


def test_closed_server_stops_answering(zenoh_pair: tuple[zenoh.Session, zenoh.Session]) -> None:
    server_side, client_side = zenoh_pair
    key = KEYS.query("test", "closing")
    assert not wait_for_server(client_side, key, timeout_s=0.2)
    srv = Server(server_side, key, Echo, echo)
    assert wait_for_server(client_side, key, timeout_s=5)
    assert call(client_side, key, Echo(text="a"), Chunk).text == "a"
    srv.close()
    with pytest.raises(BusError, match="no reply"):
        call(client_side, key, Echo(text="a"), Chunk, timeout_s=0.5)


def test_inline_requests_skip_the_workers(zenoh_pair: tuple[zenoh.Session, zenoh.Session]) -> None:
    """Requests the predicate picks are answered on Zenoh's thread, even while every
    worker is held by a slow request (an injected stall); bad payloads still get errors."""
    server_side, client_side = zenoh_pair
    release = threading.Event()
    threads: dict[str, str] = {}

    def handler(req: Echo) -> Chunk:
        threads[req.text] = threading.current_thread().name
        if req.text == "slow":
            release.wait(30)  # injected stall holding the only worker
        return Chunk(text=req.text, index=0)

    key = KEYS.query("test", "inline")
    server = Server(
        server_side, key, Echo, handler, workers=1, inline=lambda r: r.text.startswith("fast")
    )
    try:
        assert wait_for_server(client_side, key, timeout_s=5)
        slow = threading.Thread(target=call, args=(client_side, key, Echo(text="slow"), Chunk))
        slow.start()
        while "slow" not in threads:
            threading.Event().wait(0.01)
        assert call(client_side, key, Echo(text="fast-1"), Chunk).text == "fast-1"
        assert not threads["fast-1"].startswith("rpc:")  # not a worker thread
        with pytest.raises(RequestFailed) as err:
            call(client_side, key, Message(), Chunk)  # type: ignore[arg-type]
        assert err.value.reply.code == "bad_request"
        release.set()
        slow.join(30)
        assert threads["slow"].startswith("rpc:")
    finally:
        release.set()
        server.close()


def test_batches_keep_order_and_isolate_errors(
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
) -> None:
    """Requests waiting together are served in one call; an ErrorReply in its list goes
    to that request only, and a batch that raises fails only its own requests."""
    server_side, client_side = zenoh_pair
    sizes: list[int] = []
    gate, entered = threading.Event(), threading.Event()

    def batch(reqs: list[Echo]) -> list[Message]:
        entered.set()
        gate.wait(30)  # injected stall: later requests pile up behind the first batch
        sizes.append(len(reqs))
        if any(r.text == "explode" for r in reqs):
            raise RuntimeError("batch blew up on purpose")
        return [
            ErrorReply(code="busy", message="refused on purpose")
            if r.text == "refuse"
            else Chunk(text=r.text, index=i)
            for i, r in enumerate(reqs)
        ]

    key = KEYS.query("test", "batch")
    server = Server(server_side, key, Echo, echo, workers=1, batch=batch, max_batch=8)
    results: dict[str, object] = {}

    def ask(text: str) -> None:
        try:
            results[text] = call(client_side, key, Echo(text=text), Chunk, timeout_s=30).text
        except RequestFailed as exc:
            results[text] = exc.reply.code

    try:
        assert wait_for_server(client_side, key, timeout_s=5)
        first = threading.Thread(target=ask, args=("first",))
        first.start()
        assert entered.wait(10)  # the first request is being served
        texts = ["a", "refuse", "b", "c"]
        askers = [threading.Thread(target=ask, args=(t,)) for t in texts]
        for a in askers:
            a.start()
        while len(server._pending) < len(texts):
            threading.Event().wait(0.005)
        gate.set()
        for a in [first, *askers]:
            a.join(30)
        assert results == {"first": "first", "a": "a", "refuse": "busy", "b": "b", "c": "c"}
        assert sizes == [1, 4]  # the four waiting requests shared one call
        with pytest.raises(RequestFailed) as err:
            call(client_side, key, Echo(text="explode"), Chunk)
        assert err.value.reply.code == "internal"
        assert call(client_side, key, Echo(text="after"), Chunk).text == "after"
        with pytest.raises(RequestFailed) as bad:
            call(client_side, key, Message(), Chunk)  # type: ignore[arg-type]
        assert bad.value.reply.code == "bad_request"
    finally:
        gate.set()
        server.close()


def test_first_step_decides_inline_or_worker_and_after_runs_once_the_reply_is_out(
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
) -> None:
    """``first`` runs on Zenoh's thread; what it marks inline is answered there even while
    the only worker is held (an injected stall), the rest on a worker; ``after`` runs
    once per request, after its reply, wherever it ran; errors in either step reply."""
    server_side, client_side = zenoh_pair
    release = threading.Event()
    seen: dict[str, list[str]] = {}
    after: list[str] = []

    def first(req: Echo) -> Continuation:
        seen[req.text] = [threading.current_thread().name]
        if req.text == "first-boom":
            raise RuntimeError("first step blew up on purpose")

        def reply() -> Chunk:
            seen[req.text].append(threading.current_thread().name)
            if req.text == "slow":
                release.wait(30)
            if req.text == "reply-boom":
                raise RuntimeError("reply blew up on purpose")
            return Chunk(text=req.text, index=0)

        return Continuation(
            reply=reply, inline=req.text.startswith("fast"), after=lambda: after.append(req.text)
        )

    key = KEYS.query("test", "first")
    server = Server(server_side, key, Echo, first=first, workers=1)
    try:
        assert wait_for_server(client_side, key, timeout_s=5)
        slow = threading.Thread(target=call, args=(client_side, key, Echo(text="slow"), Chunk))
        slow.start()
        while len(seen.get("slow", [])) < 2:
            threading.Event().wait(0.01)
        assert call(client_side, key, Echo(text="fast-1"), Chunk).text == "fast-1"
        assert not any(t.startswith("rpc:") for t in seen["fast-1"])
        assert wait_until(lambda: "fast-1" in after) and "slow" not in after
        with pytest.raises(RequestFailed) as err:
            call(client_side, key, Echo(text="first-boom"), Chunk)
        assert err.value.reply.code == "internal" and "on purpose" in err.value.reply.message
        with pytest.raises(RequestFailed) as err:
            call(client_side, key, Message(), Chunk)  # type: ignore[arg-type]
        assert err.value.reply.code == "bad_request"
        release.set()
        slow.join(30)
        assert seen["slow"][0] != seen["slow"][1] and seen["slow"][1].startswith("rpc:")
        with pytest.raises(RequestFailed) as err:
            call(client_side, key, Echo(text="reply-boom"), Chunk)
        assert err.value.reply.code == "internal"
        assert wait_until(lambda: sorted(after) == ["fast-1", "reply-boom", "slow"]), after
    finally:
        release.set()
        server.close()


def test_a_server_takes_exactly_one_of_handler_and_first(
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Server(zenoh_pair[0], KEYS.query("test", "neither"), Echo)
    with pytest.raises(ValueError, match="exactly one"):
        Server(
            zenoh_pair[0],
            KEYS.query("test", "both"),
            Echo,
            echo,
            first=lambda r: Continuation(reply=lambda: echo(r)),
        )


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b"[" * 1000 + b"]" * 1000, "nested too deeply"),
        (b'{"text": "x", "repeat": ' + b"9" * 5000 + b"}", "not valid UTF-8 JSON"),
        (b'{"text": "' + b"a" * (2 << 20) + b'"}', "over the 1,048,576-byte limit"),
        (b'{"a": ' * 2000 + b"1" + b"}" * 2000, "nested too deeply"),
    ],
    ids=["deep-array", "huge-integer", "oversize", "deep-object"],
)
def test_hostile_payloads_get_bad_request_on_every_path(
    zenoh_pair: tuple[zenoh.Session, zenoh.Session], payload: bytes, says: str
) -> None:
    """Deep nesting, a 5,000-digit integer and an oversize payload get ``bad_request``
    from a worker-served, an inline-decoding and a batching server alike; all then
    answer a good request."""
    server_side, client_side = zenoh_pair
    servers = [
        Server(server_side, KEYS.query("hostile", "plain"), Echo, echo),
        Server(server_side, KEYS.query("hostile", "inline"), Echo, echo, inline=lambda r: True),
        Server(
            server_side,
            KEYS.query("hostile", "batch"),
            Echo,
            echo,
            batch=lambda reqs: [Chunk(text=r.text, index=0) for r in reqs],
        ),
    ]
    try:
        for server in servers:
            assert wait_for_server(client_side, server.key, timeout_s=5)
            replies = list(client_side.get(server.key, payload=payload, timeout=10))
            assert len(replies) == 1 and replies[0].err is not None, server.key
            err = ErrorReply.model_validate_json(replies[0].err.payload.to_bytes())
            assert err.code == "bad_request" and says in err.message, (server.key, err)
            assert call(client_side, server.key, Echo(text="fine"), Chunk).text == "fine"
    finally:
        for server in servers:
            server.close()


def test_a_second_replier_cannot_splice_text_into_an_answer(
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
    bus_configs: tuple[BusConfig, BusConfig],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A rogue session declaring the same streaming key (a fault injected on purpose):
    the client's answer holds one server's chunks only, and the other is logged."""
    server_side, client_side = zenoh_pair
    rogue_side = open_session(bus_configs[1])
    key = KEYS.query("spliced", "stream")

    def rogue(req: Echo) -> Iterator[Chunk]:
        for i in range(req.repeat):
            yield Chunk(text="INJECTED", index=i)

    servers = [Server(server_side, key, Echo, chunks), Server(rogue_side, key, Echo, rogue)]
    try:
        assert wait_for_server(client_side, key, timeout_s=5)
        deadline = threading.Event()
        texts: set[str] = set()
        for _ in range(50):  # until both repliers have answered one query
            with caplog.at_level(logging.ERROR, logger="emily.bus.rpc"):
                got = list(stream(client_side, key, Echo(text="real", repeat=3), Chunk))
            assert len({c.text for c in got}) == 1 and [c.index for c in got] == [0, 1, 2]
            texts |= {c.text for c in got}
            if "second replier" in caplog.text:
                break
            deadline.wait(0.05)
        assert "second replier" in caplog.text
    finally:
        for server in servers:
            server.close()
        rogue_side.close()


def test_a_reply_just_before_the_deadline_is_the_answer_and_the_timeout_is_no_rogue(
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that replies but keeps its query open (a fault injected on purpose: the
    final message is late) makes the querier's own timeout marker, with no replier id,
    arrive after the answer; that is neither a second answer nor a rogue replier."""
    server_side, client_side = zenoh_pair
    key = KEYS.query("late-final", "echo")
    held: list[zenoh.Query] = []

    def answer(query: zenoh.Query) -> None:
        query.reply(query.key_expr, Chunk(text="on time", index=0).model_dump_json().encode())
        held.append(query)  # no final until the query is dropped

    queryable = server_side.declare_queryable(key, answer)
    try:
        assert wait_for_server(client_side, key, timeout_s=5)
        with caplog.at_level(logging.DEBUG, logger="emily.bus.rpc"):
            got = call(client_side, key, Echo(text="x"), Chunk, timeout_s=1.0)
        assert got.text == "on time"
        assert "second replier" not in caplog.text
        assert "late reply" in caplog.text  # the timeout marker did arrive, and was dropped
    finally:
        held.clear()
        queryable.undeclare()


def test_a_restarted_rendezvous_peer_is_found_again_and_no_query_outlives_its_deadline() -> None:
    """The rendezvous peer (what ``emily up`` holds) goes away and comes back on the same
    endpoint: a server and a client that met through it keep answering each other, the
    restarted peer reaches the server again within 5 s, and a query for a server that
    is absent fails within its deadline."""
    from tests.conftest import free_port

    endpoint = f"tcp/127.0.0.1:{free_port()}"
    rendezvous = open_session(BusConfig(node="rv", listen=(endpoint,), connect=()))
    server_side = open_session(BusConfig(node="rv", listen=(), connect=(endpoint,)))
    client_side = open_session(BusConfig(node="rv", listen=(), connect=(endpoint,)))
    key = Keys("rv").query("test", "echo")
    server = Server(server_side, key, Echo, echo)
    try:
        assert wait_for_server(client_side, key, timeout_s=5)
        rendezvous.close()  # the fault: the rendezvous peer stops
        assert call(client_side, key, Echo(text="meanwhile"), Chunk, timeout_s=5).text == (
            "meanwhile"
        )
        rendezvous = open_session(BusConfig(node="rv", listen=(endpoint,), connect=()))
        assert wait_for_server(rendezvous, key, timeout_s=5)
        assert call(rendezvous, key, Echo(text="back"), Chunk, timeout_s=5).text == "back"
        started = time.monotonic()
        with pytest.raises(BusError, match="no reply"):
            call(
                client_side,
                Keys("rv").query("test", "absent"),
                Echo(text="x"),
                Chunk,
                timeout_s=1.0,
            )
        assert time.monotonic() - started < 3.0, "the query outlived its 1 s deadline"
    finally:
        server.close()
        for s in (client_side, server_side, rendezvous):
            s.close()
