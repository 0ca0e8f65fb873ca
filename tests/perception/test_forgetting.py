"""Media leaves perception's store when memory forgets its last episode: the real memory
service (Postgres, MiniLM, the event log's relay) and perception on one Zenoh pair."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zenoh

from emily.bus.endpoints import EVENTS, FORGET, STORE, TRANSCRIBE, served_by
from emily.bus.rpc import wait_for_server
from emily.bus.schemas.lifecycle import EventsRequest, ForgetRequest
from emily.bus.schemas.memory import EpisodeIn, StoreRequest
from emily.bus.schemas.perception import TranscribeRequest, b64_media, sha256_hex
from emily.embed import Embedder
from emily.memory.config import MemoryConfig
from emily.memory.core import Memory
from emily.memory.events import Retention
from emily.memory.metrics import MemoryMetrics
from emily.memory.service import MemoryService, serve
from emily.memory.store import PgStore
from emily.perception.forgetting import CURSOR, MediaJanitor
from emily.perception.media import MediaStore
from emily.perception.service import PerceptionService
from tests.perception.conftest import KEYS
from tests.perception.media import speak

pytestmark = pytest.mark.slow


@pytest.fixture
def memory(
    pg_dsn: str, minilm: Embedder, zenoh_pair: tuple[zenoh.Session, zenoh.Session], tmp_path: Path
) -> Iterator[MemoryService]:
    cfg = MemoryConfig(state=tmp_path / "memory", pool_timeout_s=1.0, consolidate_interval_s=0)
    mem = Memory(cfg, PgStore(pg_dsn, cfg), minilm, metrics=MemoryMetrics())
    service = serve(mem, zenoh_pair[0], KEYS, workers=2)
    for endpoint in served_by("memory"):
        assert wait_for_server(zenoh_pair[1], endpoint.key(KEYS), timeout_s=10)
    yield service
    service.close()


def eventually(check: Callable[[], bool], what: str) -> None:
    """Poll ``check`` until it holds; the relay and the janitor run on their own threads."""
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def keep_clip(client: zenoh.Session, text: str) -> str:
    heard = TRANSCRIBE.call(
        client, KEYS, TranscribeRequest(audio=b64_media(speak(text)), keep=True), timeout_s=60
    )
    assert heard.kept
    return heard.sha256


def store(client: zenoh.Session, text: str, sha: str | None) -> uuid.UUID:
    ctx = {"modality": "audio", "media_sha256": sha} if sha else {}
    reply = STORE.call(
        client, KEYS, StoreRequest(episodes=[EpisodeIn(text=text, context=ctx)]), timeout_s=60
    )
    assert reply.durable
    return reply.ids[0]


def forget(client: zenoh.Session, *ids: uuid.UUID) -> int:
    """Forget ``ids``; returns the log's sequence number after it."""
    reply = FORGET.call(client, KEYS, ForgetRequest(ids=list(ids)), timeout_s=30)
    assert reply.forgotten == list(ids)
    return EVENTS.call(client, KEYS, EventsRequest(since=0, limit=1), timeout_s=30).last


def test_forgetting_the_last_episode_deletes_its_media(
    perception: PerceptionService, memory: MemoryService, zenoh_pair
) -> None:
    client = zenoh_pair[1]
    janitor = perception.janitor
    sha = keep_clip(client, "The red kite nested in the old oak by the river.")
    path = perception.media.path(sha)
    assert path.exists()
    first = store(client, "The red kite nested in the old oak by the river.", sha)
    twin = store(client, "A kite nested by the river (heard twice).", sha)
    plain = store(client, "No media behind this one.", None)

    seq = forget(client, first)
    eventually(lambda: (janitor.cursor or 0) >= seq, "the janitor never read the forget")
    assert path.exists()  # the twin still names it: not orphaned

    seq = forget(client, plain)
    eventually(lambda: (janitor.cursor or 0) >= seq, "the janitor never read the forget")
    assert path.exists()

    removed = janitor.removed
    seq = forget(client, twin)
    eventually(lambda: not path.exists(), "orphaned media was not deleted")
    eventually(lambda: janitor.removed == removed + 1, "the deletion was not counted")
    eventually(lambda: (janitor.cursor or 0) >= seq, "the cursor did not move")
    cursor = (perception.media.root / CURSOR).read_text()
    assert int(cursor) == janitor.cursor


def test_forgets_missed_while_down_are_caught_up_at_start(
    perception: PerceptionService, memory: MemoryService, zenoh_pair
) -> None:
    client = zenoh_pair[1]
    seen = perception.janitor
    sha = keep_clip(client, "Return the library books on Friday.")
    ep = store(client, "Return the library books on Friday.", sha)
    seq = forget(client, store(client, "Something to forget first.", None))
    eventually(lambda: (seen.cursor or 0) >= seq, "the janitor never read the forget")
    seen.close()  # perception is down from here
    try:
        forget(client, ep)
        assert perception.media.path(sha).exists()
        again = MediaJanitor(perception.media, zenoh_pair[0], KEYS)  # perception restarts
        try:
            eventually(lambda: not perception.media.path(sha).exists(), "not caught up at start")
            eventually(lambda: again.removed == 1, "the deletion was not counted")
        finally:
            again.close()
    finally:
        perception.janitor = MediaJanitor(perception.media, zenoh_pair[0], KEYS)


def test_a_bad_cursor_file_starts_afresh(perception: PerceptionService, zenoh_pair) -> None:
    perception.media.root.mkdir(parents=True, exist_ok=True)
    path = perception.media.root / CURSOR
    old = path.read_text() if path.exists() else None
    path.write_text("not a number")
    try:
        janitor = MediaJanitor(perception.media, zenoh_pair[0], KEYS)
        assert janitor.cursor is None
        janitor.close()
    finally:
        if old is None:
            path.unlink()
        else:
            path.write_text(old)


def test_a_log_trimmed_past_the_cursor_makes_the_janitor_reconcile(
    memory: MemoryService, zenoh_pair, tmp_path: Path
) -> None:
    client = zenoh_pair[1]
    media = MediaStore(tmp_path / "media", 1 << 20)
    sha = {}
    for name in ("kept", "forgotten", "never", "fresh"):
        data = f"the {name} clip".encode()
        sha[name] = sha256_hex(data)
        assert media.put(sha[name], data)
    hour_ago = time.time() - 3600
    for name in ("kept", "forgotten", "never"):
        os.utime(media.path(sha[name]), (hour_ago, hour_ago))
    kept = store(client, "Kept: the clip of the harbour at dawn.", sha["kept"])
    gone = store(client, "Forgotten: the clip of the storm.", sha["forgotten"])
    janitor = MediaJanitor(media, zenoh_pair[0], KEYS, grace_s=60)
    seq = forget(client, store(client, "Nothing behind this one.", None))
    eventually(lambda: (janitor.cursor or 0) >= seq, "the janitor never read the forget")
    janitor.close()  # down from here: the next forget is in the log only
    forget(client, gone)
    last = store(client, "Stored after the forget.", None)
    log = memory.memory.events
    eventually(lambda: log.relayed == seq + 2, "the relay did not publish the store")
    assert log.trim(Retention(keep_days=0, keep_max=1)) == seq + 1  # the forget goes too
    reply = EVENTS.call(client, KEYS, EventsRequest(since=seq), timeout_s=30)
    assert reply.trimmed == seq + 1 and [e.episode_id for e in reply.events] == [last]
    assert media.path(sha["forgotten"]).exists()  # its forget left the log unread

    again = MediaJanitor(media, zenoh_pair[0], KEYS, grace_s=60)
    try:
        eventually(lambda: again.reconciles == 1, "the janitor did not reconcile")
        eventually(lambda: (again.cursor or 0) >= seq + 1, "the cursor did not move on")
    finally:
        again.close()
    assert media.path(sha["kept"]).exists()  # an episode still names it
    assert media.path(sha["fresh"]).exists()  # too young: its episode may be on its way
    assert not media.path(sha["forgotten"]).exists() and not media.path(sha["never"]).exists()
    assert again.removed == 2 and kept
    assert (media.root / CURSOR).read_text() == str(again.cursor)
