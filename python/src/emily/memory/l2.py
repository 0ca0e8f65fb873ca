"""Tier L2: warm episodes and their embeddings in files under the state dir.

Two files of fixed slots: ``vectors.b<slot_bytes>.f32`` (a ``(slots, 384)`` float32
row per slot) and ``slots.b<slot_bytes>.bin`` (``slot_bytes`` per slot: a 4-byte
little-endian length, a 4-byte CRC-32 of the slot's vector and body, then the record's
JSON). A slot with length 0 is free. The slot geometry is in the file names, so a
changed ``slot_bytes`` starts an empty L2 instead of misreading the old one.

The files grow in steps up to ``capacity`` slots, each step reserved with
``posix_fallocate``, and every write is a ``pwrite``; the files are only read through
maps. A full disk therefore means the files stop growing (L2 keeps the slots it has)
and a failed write is an :class:`OSError` that takes L2 offline with an error in the
log: never a SIGBUS, which a write into a sparse map the filesystem cannot back would
raise. L2 is a cache (L3 holds everything), so the tiers serve without it, and it comes
back by itself, retried every ``retry_s``, once there is space again.

On open, the slots are scanned to rebuild the index, so L2's contents survive a
restart. A slot whose length, checksum or JSON is wrong is dropped with a warning and
its id, when it can be read, listed in :attr:`L2.dropped` for a re-fetch from L3.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emily.bus.schemas.memory import EMBED_DIM
from emily.memory.record import Record

log = logging.getLogger(__name__)
_HEAD = struct.Struct("<II")  # body length, CRC-32 of vector bytes + body
_VEC = EMBED_DIM * 4
_GROW_MIN = 64  # slots added by the first growth step; later steps double


class CorruptSlot(ValueError):
    """A slot's bytes do not pass their checksum: the record must come from L3."""


class L2:
    """A slot store of records on disk, growing up to ``capacity`` slots.

    Parameters
    ----------
    root : directory of the two files (created if missing).
    capacity : most slots (episodes).
    slot_bytes : bytes per record slot; a record whose JSON is longer is not held.
    retry_s : seconds between attempts to grow or reopen after a disk error.
    """

    def __init__(
        self, root: Path, capacity: int, slot_bytes: int = 4096, *, retry_s: float = 30.0
    ) -> None:
        self.root = root
        self.capacity = capacity
        self.slot_bytes = slot_bytes
        self.retry_s = retry_s
        self.vec_path = root / f"vectors.b{slot_bytes}.f32"
        self.rec_path = root / f"slots.b{slot_bytes}.bin"
        self.slot_of: dict[uuid.UUID, int] = {}
        self.free: list[int] = []
        self.dropped: list[uuid.UUID] = []
        self.error: str | None = None  # why L2 is offline or cannot grow
        self.size = 0  # slots the files hold (and the maps show)
        self._fds: tuple[int, int] | None = None
        self._failed_at = -float("inf")
        self._map()
        self._open()

    # ------------------------------------------------------------ files
    def _open(self) -> bool:
        """Open (creating) the files and scan them; False, logged, when the disk refuses."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._drop_other_geometries()
            fds = tuple(os.open(p, os.O_RDWR | os.O_CREAT, 0o600) for p in self._paths())
            self._fds = (fds[0], fds[1])
            n = os.fstat(fds[1]).st_size // self.slot_bytes
            if (
                os.fstat(fds[0]).st_size != n * _VEC
                or os.fstat(fds[1]).st_size != n * self.slot_bytes
                or n > self.capacity
            ):
                if n:
                    log.warning("L2 files in %s do not match; starting L2 empty", self.root)
                for fd in fds:
                    os.ftruncate(fd, 0)
                n = 0
            self._map(n)
        except OSError as exc:
            self._offline(exc, "cannot open its files")
            return False
        self.error = None
        self._scan()
        return True

    def _paths(self) -> tuple[Path, Path]:
        return self.vec_path, self.rec_path

    def _drop_other_geometries(self) -> None:
        """Remove L2 files of another slot size or of the layout without checksums."""
        keep = {p.name for p in self._paths()}
        for old in self.root.iterdir():
            stale = old.name.startswith(("vectors", "slots")) or old.name == "records.bin"
            if stale and old.name not in keep:
                log.warning("L2 slot layout changed; removing %s (L3 still holds all)", old)
                old.unlink()

    def _map(self, n: int = 0) -> None:
        """Map the first ``n`` slots of both files read-only (writes go through pwrite)."""
        self.size = n
        if n == 0 or self._fds is None:
            self.vectors = np.zeros((0, EMBED_DIM), dtype=np.float32)
            self.slots = np.zeros((0, self.slot_bytes), dtype=np.uint8)
            self.size = 0
            return
        vmap = mmap.mmap(self._fds[0], n * _VEC, mmap.MAP_SHARED, mmap.PROT_READ)
        smap = mmap.mmap(self._fds[1], n * self.slot_bytes, mmap.MAP_SHARED, mmap.PROT_READ)
        self.vectors = np.frombuffer(vmap, dtype=np.float32).reshape(n, EMBED_DIM)
        self.slots = np.frombuffer(smap, dtype=np.uint8).reshape(n, self.slot_bytes)

    def _scan(self) -> None:
        """Rebuild the index from the slots, dropping the ones that fail their checks."""
        heads = self.slots[:, : _HEAD.size].copy().view("<u4").reshape(self.size, 2)
        used: set[int] = set()
        for slot in np.flatnonzero(heads[:, 0]).tolist():
            if not self.online:  # dropping a slot failed: the disk refuses writes
                return
            try:
                key = uuid.UUID(json.loads(self._body(slot))["id"])
            except (CorruptSlot, ValueError, KeyError, TypeError) as exc:
                self._drop_corrupt(slot, exc)
                continue
            if key in self.slot_of:  # a duplicate cannot come from put: drop it
                self._drop_corrupt(slot, ValueError("a second slot of the same id"))
                continue
            self.slot_of[key] = slot
            used.add(slot)
        self.free = [s for s in range(self.size - 1, -1, -1) if s not in used]

    def _drop_corrupt(self, slot: int, exc: Exception) -> None:
        key = _readable_id(self.slots[slot, _HEAD.size :].tobytes())
        log.warning(
            "L2 slot %d in %s is corrupt (%s); dropped%s",
            slot,
            self.rec_path,
            exc,
            f", episode {key} is re-read from L3" if key else "",
        )
        if key is not None:
            self.dropped.append(key)
        self._pwrite(1, bytes(_HEAD.size), slot * self.slot_bytes)

    def _grow(self) -> bool:
        """Add slots (reserving their disk space); False when at capacity or refused."""
        if self._fds is None or self.size >= self.capacity or self._waiting():
            return False
        n = min(self.capacity, max(_GROW_MIN, 2 * self.size))
        try:
            os.posix_fallocate(self._fds[0], 0, n * _VEC)
            os.posix_fallocate(self._fds[1], 0, n * self.slot_bytes)
        except OSError as exc:
            self._failed_at = time.monotonic()
            self.error = (
                f"L2 cannot grow past {self.size} slots in {self.root} ({exc.strerror}); it keeps "
                f"those and retries in {self.retry_s:g} s once there is space"
            )
            log.error("%s", self.error)
            sizes = (self.size * _VEC, self.size * self.slot_bytes)
            try:
                for fd, size in zip(self._fds, sizes, strict=True):
                    os.ftruncate(fd, size)  # give back what a partial reservation took
            except OSError as again:
                self._offline(again, "cannot shrink its files back")
            return False
        old = self.size
        self._map(n)
        self.free = [*range(n - 1, old - 1, -1), *self.free]
        if self.error:
            log.info("L2 in %s grows again (%d slots)", self.root, n)
        self.error = None
        return True

    def _waiting(self) -> bool:
        return time.monotonic() - self._failed_at < self.retry_s

    def _pwrite(self, which: int, data: bytes, offset: int) -> bool:
        """Write to the vectors (0) or slots (1) file; an error takes L2 offline."""
        if self._fds is None:
            return False
        try:
            if os.pwrite(self._fds[which], data, offset) != len(data):
                raise OSError(28, "short write")
        except OSError as exc:
            self._offline(exc, "a write failed")
            return False
        return True

    def _offline(self, exc: OSError, what: str) -> None:
        self._failed_at = time.monotonic()
        self.error = (
            f"L2 in {self.root} is offline: {what} ({exc.strerror or exc}); memory serves from "
            f"L0, L1 and L3 and retries every {self.retry_s:g} s"
        )
        log.error("%s", self.error)
        self.close()

    def close(self) -> None:
        """Close the files; L2 holds nothing until :meth:`reopen`."""
        self.slot_of.clear()
        self.free = []
        fds, self._fds = self._fds, None
        self._map()
        for fd in fds or ():
            os.close(fd)

    def reopen(self) -> bool:
        """Reopen after an error once ``retry_s`` has passed; True when L2 is online."""
        if self.online:
            return True
        if self._waiting():
            return False
        if self._open():
            log.info("L2 in %s is back online (%d episodes)", self.root, len(self.slot_of))
            return True
        return False

    # ------------------------------------------------------------ slots
    def _body(self, slot: int) -> bytes:
        """The JSON body of a used slot, checked against its length and checksum."""
        row = self.slots[slot]
        length, crc = _HEAD.unpack(row[: _HEAD.size].tobytes())
        if length > self.slot_bytes - _HEAD.size:
            raise CorruptSlot(f"length {length} exceeds the slot")
        body: bytes = row[_HEAD.size : _HEAD.size + length].tobytes()
        if zlib.crc32(body, zlib.crc32(self.vectors[slot].tobytes())) != crc:
            raise CorruptSlot("checksum mismatch")
        return body

    def __len__(self) -> int:
        return len(self.slot_of)

    def __contains__(self, key: uuid.UUID) -> bool:
        return key in self.slot_of

    def __iter__(self) -> Iterator[uuid.UUID]:
        return iter(list(self.slot_of))

    @property
    def online(self) -> bool:
        """The files are open."""
        return self._fds is not None

    @property
    def full(self) -> bool:
        """No free slot left and the files at ``capacity``."""
        return not self.free and self.size >= self.capacity

    def usable(self) -> bool:
        """Online (reopening when due) with at least one slot (growing when due)."""
        return self.reopen() and (self.size > 0 or self._grow())

    def room(self) -> bool:
        """A free slot, growing the files when none is left; False: evict first."""
        return bool(self.free) or self._grow()

    def fits(self, rec: Record) -> bool:
        """Whether L2 can take records now and ``rec``'s JSON fits one slot."""
        return len(rec.encoded()) + _HEAD.size <= self.slot_bytes and self.usable()

    def put(self, rec: Record) -> bool:
        """Write ``rec`` to a free slot; False when it does not fit or the disk refused
        (then :attr:`online` is False). The caller makes :meth:`room` first."""
        if rec.id in self.slot_of:
            return True
        body = rec.encoded()
        if len(body) + _HEAD.size > self.slot_bytes or not self.free:
            return False
        slot = self.free.pop()
        vec = np.ascontiguousarray(rec.embedding, dtype="<f4").tobytes()
        head = _HEAD.pack(len(body), zlib.crc32(body, zlib.crc32(vec)))
        if not (
            self._pwrite(0, vec, slot * _VEC)
            and self._pwrite(1, head + body, slot * self.slot_bytes)
        ):
            return False
        self.slot_of[rec.id] = slot
        return True

    def get(self, key: uuid.UUID) -> Record:
        """Read ``key``'s record back; :class:`CorruptSlot` when its bytes went bad."""
        slot = self.slot_of[key]
        return Record.from_json(json.loads(self._body(slot)), self.vectors[slot].copy())

    def discard(self, key: uuid.UUID) -> None:
        """Free ``key``'s slot without reading it, zeroing its text and vector, not only
        its header: an episode promoted out of L2 (or evicted) and forgotten later
        must leave nothing on the disk, and a freed slot no longer knows whose it was."""
        slot = self.slot_of.pop(key)
        self._pwrite(0, bytes(_VEC), slot * _VEC)
        if self._pwrite(1, bytes(self.slot_bytes), slot * self.slot_bytes):
            self.free.append(slot)

    def pop(self, key: uuid.UUID) -> Record:
        """Remove ``key`` and return its record."""
        try:
            return self.get(key)
        finally:
            self.discard(key)

    def flush(self) -> None:
        """fsync both files; an error is logged (L2 is a cache) and takes L2 offline."""
        for fd in self._fds or ():
            try:
                os.fsync(fd)
            except OSError as exc:
                self._offline(exc, "fsync failed")
                return


def _readable_id(raw: bytes) -> uuid.UUID | None:
    """The episode id at the start of a slot body, if those bytes survived."""
    start = raw.find(b'"id":"')
    if start < 0:
        return None
    try:
        return uuid.UUID(raw[start + 6 : start + 42].decode())
    except (UnicodeDecodeError, ValueError):
        return None
