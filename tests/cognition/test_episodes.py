"""The episode writer: durable across restarts, and a refused episode never blocks others."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import zenoh

from emily.bus import Keys
from emily.bus.endpoints import STORE
from emily.bus.health import Peers, announce
from emily.bus.messages import ErrorReply
from emily.bus.rpc import RequestFailed
from emily.bus.schemas.memory import EpisodeIn, StoreReply, StoreRequest
from emily.cognition.clients import MemoryClient, PeerUnavailable
from emily.cognition.episodes import EpisodeWriter
from emily.cognition.metrics import CognitionMetrics
from emily.cognition.outbox import CHECKPOINT_EVERY, EpisodeOutbox
from emily.ids import uuid7


def episode(text: str) -> EpisodeIn:
    return EpisodeIn(id=uuid7(), text=text, source="cognition")


def test_the_outbox_keeps_episodes_across_a_reopen_once_per_id_and_bounded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "episodes.sqlite"
    box = EpisodeOutbox(path)
    first = episode("one")
    assert box.put(first, keep=3) == 0
    assert box.put(first, keep=3) == 0  # the same id again: kept once
    for text in ("two", "three", "four"):
        box.put(episode(text), keep=3)
    box.close()
    again = EpisodeOutbox(path)
    assert [e.text for _, e in again.peek(10)] == ["two", "three", "four"]
    again.remove([seq for seq, _ in again.peek(1)])
    assert len(again) == 2
    again.close()


def test_put_many_keeps_a_cycles_episodes_in_order_in_one_commit(tmp_path: Path) -> None:
    path = tmp_path / "episodes.sqlite"
    box = EpisodeOutbox(path, sync="full")
    turn, answer = episode("the turn"), episode("the answer")
    assert box.put_many([turn, answer, turn], keep=10) == 0  # the same id twice: once
    box.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    again = EpisodeOutbox(path)
    assert [e.id for _, e in again.peek(10)] == [turn.id, answer.id]
    assert again.put_many([episode(t) for t in "abc"], keep=3) == 2  # the oldest two go
    assert [e.text for _, e in again.peek(10)] == ["a", "b", "c"]
    again.close()
    with pytest.raises(ValueError, match="'normal' or 'full'"):
        EpisodeOutbox(tmp_path / "other.sqlite", sync="off")  # type: ignore[arg-type]


def test_commits_never_merge_the_wal_a_checkpoint_does(tmp_path: Path) -> None:
    """A cycle's commit must not run SQLite's automatic checkpoint (its disk flushes
    would land in that cycle's reply): the database file stays as created however much
    is written, until :meth:`EpisodeOutbox.checkpoint` merges the WAL into it."""
    path = tmp_path / "episodes.sqlite"
    box = EpisodeOutbox(path)
    created = path.stat().st_size
    vector = [0.05] * 384
    for i in range(CHECKPOINT_EVERY + 300):  # well past SQLite's 1000-page default
        box.put(EpisodeIn(id=uuid7(), text=f"turn {i}", embedding=vector), keep=10_000)
    assert box.checkpoint_due()
    assert path.stat().st_size == created
    assert Path(f"{path}-wal").stat().st_size > 1000 * 4096
    box.checkpoint()
    assert not box.checkpoint_due() and path.stat().st_size > 100 * created
    assert len(box) == CHECKPOINT_EVERY + 300
    box.close()


def on_disk(root: Path, word: bytes) -> list[str]:
    """The files under ``root`` that hold ``word``."""
    return [f.name for f in root.rglob("*") if f.is_file() and word in f.read_bytes()]


def test_a_delivered_episode_s_text_leaves_the_outbox_files(tmp_path: Path) -> None:
    """Once the queue is empty, a scrub leaves none of the delivered text in the
    database file or its WAL (where memory's forget could not reach it)."""
    path = tmp_path / "episodes.sqlite"
    box = EpisodeOutbox(path)
    box.put_many([episode("my pin is zanzibar"), episode("noted")], keep=10)
    box.checkpoint()  # the text in the database file's pages too, not only in the WAL
    box.put(episode("later"), keep=10)
    assert on_disk(tmp_path, b"zanzibar")
    box.remove([seq for seq, e in box.peek(10) if e.text != "later"])
    assert not box.scrub()  # "later" is still queued: nothing is truncated
    box.remove([seq for seq, _ in box.peek(10)])
    assert box.scrub()
    assert on_disk(tmp_path, b"zanzibar") == [] and on_disk(tmp_path, b"later") == []
    box.close()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0


def test_an_outbox_row_that_no_longer_decodes_is_removed_not_blocking(tmp_path: Path) -> None:
    """A damaged row (written here on purpose) is dropped; the episode after it stays."""
    path = tmp_path / "episodes.sqlite"
    box = EpisodeOutbox(path)
    box.close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO episodes (id, episode) VALUES ('x', '{\"text\": \"\"}')")
    box = EpisodeOutbox(path)
    box.put(episode("fine"), keep=10)
    assert [e.text for _, e in box.peek(10)] == ["fine"] and len(box) == 1
    box.close()


def test_injected_refusing_memory_drops_only_the_refused_episode(
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
) -> None:
    """A memory stand-in (a fault injected on purpose) refuses any batch holding the
    poison episode with ``bad_request``, as memory does for a record Postgres refuses:
    the writer drops that one episode, counts it, and stores every other."""
    server_side, client_side = zenoh_pair
    keys = Keys("poison")
    stored: list[str] = []
    lock = threading.Lock()

    def store(req: StoreRequest) -> StoreReply:
        for i, ep in enumerate(req.episodes):
            if ep.text.startswith("poison"):
                message = f"episodes.{i}.text: refused on purpose"
                raise RequestFailed(ErrorReply(code="bad_request", message=message))
        with lock:
            stored.extend(ep.text for ep in req.episodes)
        return StoreReply(ids=[ep.id for ep in req.episodes if ep.id], durable=True, queued=0)

    server = STORE.serve(server_side, keys, store, workers=1)
    token = announce(server_side, keys, "memory")
    peers = Peers(client_side, keys)
    metrics = CognitionMetrics()
    writer = EpisodeWriter(MemoryClient(client_side, keys, peers), metrics, timeout_s=5)
    try:
        assert peers.wait("memory", 10)
        texts = ["a", "b", "poison pill", "c", "d"]
        for text in texts:
            writer.submit(episode(text))
        deadline = time.monotonic() + 30
        while len(writer.pending) and time.monotonic() < deadline:
            writer.flush()
            time.sleep(0.05)
        assert sorted(stored) == ["a", "b", "c", "d"]
        assert writer.refused == 1 and len(writer.pending) == 0
        assert metrics.episodes.labels("refused")._value.get() == 1
    finally:
        writer.close()
        peers.close()
        token.undeclare()
        server.close()


def test_keep_only_writes_the_outbox_and_deliver_sends_it(
    zenoh_pair: tuple[zenoh.Session, zenoh.Session], tmp_path: Path
) -> None:
    """What a cycle does before its reply (``keep``) sends nothing to memory, even with
    memory up; what it does after (``deliver``) sends what was kept, in order."""
    server_side, client_side = zenoh_pair
    keys = Keys("kept")
    stored: list[str] = []

    def store(req: StoreRequest) -> StoreReply:
        stored.extend(ep.text for ep in req.episodes)
        return StoreReply(ids=[ep.id for ep in req.episodes if ep.id], durable=True, queued=0)

    server = STORE.serve(server_side, keys, store, workers=1)
    token = announce(server_side, keys, "memory")
    peers = Peers(client_side, keys)
    memory = MemoryClient(client_side, keys, peers)
    writer = EpisodeWriter(memory, CognitionMetrics(), outbox=tmp_path / "episodes.sqlite")
    try:
        assert peers.wait("memory", 10)
        assert writer.keep([episode("turn"), episode("answer")]) == "queued"
        assert len(writer.pending) == 2 and writer.sends == 0 and stored == []
        writer.deliver()
        deadline = time.monotonic() + 30
        while len(writer.pending) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stored == ["turn", "answer"] and len(writer.pending) == 0
        # and, the queue empty, the writer scrubs the outbox's files of their text
        while on_disk(tmp_path, b"answer") and time.monotonic() < deadline + 30:
            time.sleep(0.05)
        assert on_disk(tmp_path, b"answer") == []
    finally:
        writer.close()
        peers.close()
        token.undeclare()
        server.close()


class _TimedMemory(MemoryClient):
    """The real bus client, noting when each store left and with which deadline."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.sent: list[tuple[float, float, int, bool]] = []  # (at, deadline, size, ok)

    def store(self, episodes: list[EpisodeIn], timeout_s: float) -> StoreReply:
        at = time.monotonic()
        try:
            reply = super().store(episodes, timeout_s)
        except PeerUnavailable:
            self.sent.append((at, timeout_s, len(episodes), False))
            raise
        self.sent.append((at, timeout_s, len(episodes), True))
        return reply


def test_a_store_past_its_deadline_is_resent_only_after_a_backoff_and_delivered_on_recovery(
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
) -> None:
    """A memory stand-in that is slow on purpose (it stores each batch a second after
    the writer's 0.2 s deadline, as memory does under load): the writer waits its
    backoff before sending again instead of resending on every new episode, lengthens
    the deadline, sends at most ``batch`` at a time, and once memory is fast again
    delivers everything pending with no further episode to wake it."""
    server_side, client_side = zenoh_pair
    keys = Keys("slow-memory")
    slow = threading.Event()
    slow.set()
    stored: set[str] = set()
    lock = threading.Lock()

    def store(req: StoreRequest) -> StoreReply:
        if slow.is_set():
            time.sleep(1.0)
        with lock:
            stored.update(ep.text for ep in req.episodes)
        return StoreReply(ids=[ep.id for ep in req.episodes if ep.id], durable=True, queued=0)

    server = STORE.serve(server_side, keys, store, workers=4)
    token = announce(server_side, keys, "memory")
    peers = Peers(client_side, keys)
    memory = _TimedMemory(client_side, keys, peers)
    writer = EpisodeWriter(
        memory,
        CognitionMetrics(),
        timeout_s=0.2,
        timeout_max_s=5.0,
        batch=10,
        backoff_s=0.4,
        backoff_max_s=1.0,
    )
    try:
        assert peers.wait("memory", 10)
        texts = [f"turn {i}" for i in range(25)]
        for text in texts:  # a steady stream of cycles while memory is slow
            writer.submit(episode(text))
            time.sleep(0.05)
        while writer.failures < 2:  # the timer resends with no further submit
            time.sleep(0.05)
        assert writer.deadline_s() > 0.2  # a longer deadline after each failure
        slow.clear()  # memory recovers; no cycle follows
        deadline = time.monotonic() + 60
        while len(writer.pending) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(writer.pending) == 0 and stored == set(texts)
        assert writer.failures == 0 and writer.dropped == 0
        sent = list(memory.sent)
        assert not sent[0][3] and not sent[1][3], sent  # the slow ones missed the deadline
        # 25 submits while memory was slow, but a failed store is resent only after
        # its deadline and then the backoff (0.4 s at least)
        for (t0, dl, _, ok), (t1, *_) in itertools.pairwise(sent):
            assert ok or t1 - t0 >= dl + 0.39, sent
        assert len(sent) < len(texts), sent
        assert max(n for _, _, n, _ in sent) <= 10, sent
        assert [dl for _, dl, _, _ in sent][:2] == [0.2, 0.4], sent
    finally:
        writer.close()
        peers.close()
        token.undeclare()
        server.close()


def test_a_memory_slower_than_the_cycles_holds_them_back_instead_of_dropping(
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
) -> None:
    """Memory stand-in slow on purpose (0.2 s per batch of 5) and a burst of 60 episodes
    with room for 10: past four fifths of the bound each submit waits for the sender,
    so nothing is dropped and all 60 arrive, where the bound alone would drop most."""
    server_side, client_side = zenoh_pair
    keys = Keys("behind-memory")
    stored: list[str] = []
    lock = threading.Lock()

    def store(req: StoreRequest) -> StoreReply:
        time.sleep(0.2)
        with lock:
            stored.extend(ep.text for ep in req.episodes)
        return StoreReply(ids=[ep.id for ep in req.episodes if ep.id], durable=True, queued=0)

    server = STORE.serve(server_side, keys, store, workers=2)
    token = announce(server_side, keys, "memory")
    peers = Peers(client_side, keys)
    memory = MemoryClient(client_side, keys, peers)
    writer = EpisodeWriter(memory, CognitionMetrics(), timeout_s=5.0, pending_max=10, batch=5)
    try:
        assert peers.wait("memory", 10)
        texts = [f"burst {i}" for i in range(60)]
        for text in texts:
            writer.submit(episode(text))
        deadline = time.monotonic() + 60
        while len(writer.pending) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer.dropped == 0 and writer.held > 0
        assert sorted(stored) == sorted(texts)
    finally:
        writer.close()
        peers.close()
        token.undeclare()
        server.close()
