"""Memory under state-dir faults: a full filesystem, a read-only one, corrupt L2 slots.

The full and read-only disks are real: a small tmpfs mounted for the test (root only;
the test is skipped where ``mount`` is not allowed), filled with a real file or
remounted read-only. Memory runs against the session's real Postgres.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from emily.bus.schemas.memory import EpisodeIn, RecallRequest, StoreRequest
from emily.memory.config import MemoryConfig
from emily.memory.core import Memory
from emily.memory.embedded import EmbeddedPostgres
from emily.memory.errors import StoreUnavailable
from emily.memory.l0 import L0
from emily.memory.l2 import L2
from emily.memory.metrics import MemoryMetrics
from emily.memory.outbox import Outbox
from emily.memory.record import Record
from emily.memory.store import PgStore
from emily.memory.tiers import TieredMemory
from tests.memory.helpers import records


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted on a fresh directory (unmounted afterwards)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], capture_output=True)
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """Write a filler file until the filesystem is full, then give back ``leave`` bytes."""
    filler = disk / f"filler{len(list(disk.glob('filler*')))}"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(16384))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    os.close(fd)
    return filler


def remount(disk: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(disk)], check=True)


def memory_on(state: Path, dsn: str, **kw: object) -> Memory:
    kw.setdefault("search_index", "postgres")
    cfg = MemoryConfig(
        state=state,
        pool_timeout_s=1.0,
        l2_min_accesses=1,
        **kw,  # type: ignore[arg-type]
    )
    memory = Memory(cfg, PgStore(dsn, cfg), None, metrics=MemoryMetrics())
    memory.tiers.l2.retry_s = 0.0  # retry growing on every admission, not every 30 s
    return memory


def store(memory: Memory, recs: list[Record]) -> list[uuid.UUID]:
    eps = [
        EpisodeIn(id=r.id, text=r.text, timestamp=r.ts, embedding=r.embedding.tolist())
        for r in recs
    ]
    return memory.store_episodes(StoreRequest(episodes=eps)).ids


def recall_one(memory: Memory, rec: Record) -> tuple[str, str]:
    hit = memory.recall(RecallRequest(vector=rec.embedding.tolist(), k=1)).hits[0]
    return hit.episode.text, hit.tier


def test_injected_full_tmpfs_stops_l2_memory_serves_and_l2_resumes(
    small_disk: Path, pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The fault: the state dir's filesystem has 48 KiB left when L2 first grows (its first
    step needs 352 KiB), then none at all; afterwards the filler file is removed."""
    memory = memory_on(small_disk / "memory", pg_dsn, l1_capacity=8, l2_capacity=128)
    recs = records(60)
    store(memory, recs)
    filler = fill(small_disk, leave=48 * 1024)
    with caplog.at_level(logging.INFO):
        for rec in recs[:40]:  # each first recall admits its episode to a cache tier
            assert recall_one(memory, rec) == (rec.text, "L3")
        memory.tiers.check()
        assert "L2 cannot grow" in caplog.text and "No space left on device" in caplog.text
        sizes = memory.tiers.sizes()
        assert sizes["L2"] == 0 and sizes["L1"] == 8  # L2 admission stopped, L1 serves
        hot = [r for r in recs[:40] if memory.tiers.tier_of.get(r.id) == "L1"]
        assert len(hot) == 8 and recall_one(memory, hot[0]) == (hot[0].text, "L1")
        fill(small_disk, leave=0)  # the state dir is now entirely full
        memory.tiers.save()  # logged, not raised
        assert "access statistics not saved" in caplog.text
        assert memory.stats().tiers[2].size == 0
        for f in small_disk.glob("filler*"):
            f.unlink()
        del filler
        for rec in recs[40:]:  # space is back: L2 takes episodes again
            assert recall_one(memory, rec) == (rec.text, "L3")
        assert "grows again" in caplog.text
    memory.tiers.check()
    assert memory.tiers.sizes()["L2"] >= 10
    in_l2 = next(k for k, t in memory.tiers.tier_of.items() if t == "L2")
    assert recall_one(memory, next(r for r in recs if r.id == in_l2))[1] == "L2"
    memory.close()


def test_injected_full_disk_after_reservation_never_signals(small_disk: Path) -> None:
    """The fault: the filesystem fills up after L2 reserved its first step; writes into
    the reserved slots still succeed (a sparse map would raise SIGBUS here)."""
    l2 = L2(small_disk / "l2", 64)
    recs = records(64)
    assert l2.room()  # reserves 64 slots
    fill(small_disk, leave=0)
    for rec in recs:
        assert l2.room() and l2.put(rec)
    assert not l2.room() and l2.full
    l2.close()
    again = L2(small_disk / "l2", 64)
    assert len(again) == 64 and again.get(recs[63].id).text == recs[63].text


def test_injected_read_only_state_dir_takes_l2_offline_and_back(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The fault: the state dir's filesystem is remounted read-only between two runs."""
    root = small_disk / "memory"
    recs = records(12)
    first = L2(root / "l2", 16)
    for rec in recs[:3]:
        assert first.room() and first.put(rec)
    first.close()
    remount(small_disk, "ro")
    with caplog.at_level(logging.INFO):
        tiers = TieredMemory(
            root, L0(2, torch.device("cpu")), l1_capacity=4, l2_capacity=16, l2_min_accesses=1
        )
        assert not tiers.l2.online and "Read-only file system" in caplog.text
        tiers.l2.retry_s = 0.0
        tiers.accessed((r, "L3") for r in recs[3:9])  # L3 -> L1 directly, L1 evicts to L3
        tiers.check()
        assert tiers.sizes() == {"L0": 0, "L1": 4, "L2": 0}
        tiers.save()  # logged, not raised
        remount(small_disk, "rw")
        tiers.accessed([(recs[9], "L3")])  # L2 reopens, finds its three slots again
        assert "back online" in caplog.text
    tiers.check()
    assert {k for k, t in tiers.tier_of.items() if t == "L2"} >= {r.id for r in recs[:3]}
    assert tiers.get(recs[0].id) is not None and tiers.get(recs[0].id)[0].text == recs[0].text  # type: ignore[index]


def corrupt(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def test_injected_corrupt_slots_are_dropped_and_refetched_from_l3(
    tmp_path: Path, pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The faults: one slot's JSON gets a bad byte, one a length past the slot, one a wrong
    checksum, one is overwritten with garbage entirely, and (while running) one more gets
    a bad byte in its text."""
    memory = memory_on(tmp_path / "memory", pg_dsn, l1_capacity=2, l2_capacity=16)
    recs = records(10)
    store(memory, recs)
    for rec in recs:
        recall_one(memory, rec)  # L3 -> L2 on the first recall
    slot_of = dict(memory.tiers.l2.slot_of)
    assert set(slot_of) == {r.id for r in recs}
    memory.close()
    l2 = memory.tiers.l2
    a, b, c, d, e = recs[:5]
    sb = l2.slot_bytes
    corrupt(l2.rec_path, slot_of[a.id] * sb + 8, b"X")  # the JSON's opening brace
    corrupt(l2.rec_path, slot_of[b.id] * sb, (sb * 2).to_bytes(4, "little"))
    corrupt(l2.rec_path, slot_of[c.id] * sb + 4, bytes(4))
    corrupt(l2.rec_path, slot_of[d.id] * sb, os.urandom(sb))
    with caplog.at_level(logging.WARNING):
        again = memory_on(tmp_path / "memory", pg_dsn, l1_capacity=2, l2_capacity=16)
    assert caplog.text.count("is corrupt") == 4
    tiers = again.tiers
    tiers.check()
    for rec in (a, b, c):  # re-fetched from L3 into L2 at start
        assert tiers.tier_of.get(rec.id) == "L2"
        got = tiers.get(rec.id)
        assert got is not None and got[0].text == rec.text
    assert d.id not in tiers.tier_of  # its id was unreadable: only L3 has it
    assert recall_one(again, d) == (d.text, "L3")
    # at run time: a flipped byte in e's text is caught by the checksum on read
    text_at = bytes(again.tiers.l2.slots[again.tiers.l2.slot_of[e.id]]).index(e.text.encode())
    corrupt(again.tiers.l2.rec_path, again.tiers.l2.slot_of[e.id] * sb + text_at, b"#")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert recall_one(again, e) == (e.text, "L3")
    assert "is corrupt" in caplog.text
    tiers.check()
    again.close()


def test_injected_read_only_state_dir_memory_starts_and_serves(
    small_disk: Path, pg_dsn: str, pg_server: EmbeddedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    """The fault: the whole state dir (L2, outbox, statistics, search index) is remounted
    read-only between two runs; later Postgres is killed too."""
    state = small_disk / "memory"
    recs = records(12)
    first = memory_on(state, pg_dsn, search_index="hnswlib", l1_capacity=4, l2_capacity=16)
    store(first, recs[:6])
    for rec in recs[:6]:
        recall_one(first, rec)
    first.close()
    remount(small_disk, "ro")
    with caplog.at_level(logging.INFO):
        memory = memory_on(state, pg_dsn, search_index="hnswlib", l1_capacity=4, l2_capacity=16)
        assert "L2 in" in caplog.text and "Read-only file system" in caplog.text
        assert "the outbox" in caplog.text and "make the state dir writable" in caplog.text
        reply = memory.store_episodes(
            StoreRequest(
                episodes=[
                    EpisodeIn(id=r.id, text=r.text, embedding=r.embedding.tolist())
                    for r in recs[6:]
                ]
            )
        )
        assert reply.durable  # Postgres takes them directly
        for rec in recs:
            assert recall_one(memory, rec)[0] == rec.text
        assert memory.tiers.sizes()["L1"] == 4 and memory.stats().episodes == 12
        memory.tiers.check()
        pg_server.kill()  # and now Postgres is gone too: a store is refused, not lost
        with pytest.raises(StoreUnavailable, match="outbox"):
            memory.store_episodes(
                StoreRequest(episodes=[EpisodeIn(text="x", embedding=[1.0] * 384)])
            )
        pg_server.start()
        memory.close()  # logged, not raised
    remount(small_disk, "rw")
    again = memory_on(state, pg_dsn, l1_capacity=4, l2_capacity=16)
    assert again.tiers.l2.online and again.outbox.error is None and len(again.tiers.l2) == 6
    again.close()


def test_injected_full_disk_outbox_refuses_clearly_and_recovers(small_disk: Path) -> None:
    """The fault: the outbox's filesystem is full when Postgres is down."""
    outbox = Outbox(small_disk / "outbox.sqlite")
    recs = records(200)
    fill(small_disk, leave=0)
    with pytest.raises(StoreUnavailable, match="free space"):
        outbox.put(recs)
    assert outbox.pending() == 0  # nothing half-queued
    for f in small_disk.glob("filler*"):
        f.unlink()
    outbox.put(recs)
    assert outbox.pending() == 200
    outbox.close()
