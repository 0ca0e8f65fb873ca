"""Tier L2: warm episodes and their embeddings in memory-mapped files under the state dir.

Two files of ``capacity`` fixed slots each: ``vectors.f32`` (``(capacity, 384)``
float32) and ``records.bin`` (``slot_bytes`` per slot: a 4-byte little-endian length,
then the record's JSON). A slot with length 0 is free. The length is written after
the body, so a torn write leaves a free slot, never a corrupt one. On open, the slots
are scanned to rebuild the index, so L2's contents survive a restart.
"""

from __future__ import annotations

import json
import logging
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from emily.bus.schemas.memory import EMBED_DIM
from emily.memory.record import Record

log = logging.getLogger(__name__)
_LEN = struct.Struct("<I")


class L2:
    """A fixed-capacity slot store of records on disk.

    Parameters
    ----------
    root : directory of the two files (created if missing).
    capacity : slots (episodes).
    slot_bytes : bytes per record slot; a record whose JSON is longer is not held.
    """

    def __init__(self, root: Path, capacity: int, slot_bytes: int = 4096) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.capacity = capacity
        self.slot_bytes = slot_bytes
        vec_path, rec_path = root / "vectors.f32", root / "records.bin"
        shape = (capacity, EMBED_DIM)
        fresh = not (
            vec_path.exists()
            and rec_path.exists()
            and vec_path.stat().st_size == capacity * EMBED_DIM * 4
            and rec_path.stat().st_size == capacity * slot_bytes
        )
        if fresh and vec_path.exists():
            log.warning("L2 geometry changed; starting %s empty (L3 still holds everything)", root)
        mode: Literal["w+", "r+"] = "w+" if fresh else "r+"
        self.vectors = np.memmap(str(vec_path), dtype=np.float32, mode=mode, shape=shape)
        self.slots = np.memmap(
            str(rec_path), dtype=np.uint8, mode=mode, shape=(capacity, slot_bytes)
        )
        # plain-ndarray views of the same mappings: indexing them skips np.memmap's
        # per-slice Python overhead (the recall path reads and writes slots)
        self._vectors = self.vectors.view(np.ndarray)
        self._slots = self.slots.view(np.ndarray)
        self.slot_of: dict[uuid.UUID, int] = {}
        for slot in range(capacity):
            body = self._body(slot)
            if body:
                self.slot_of[uuid.UUID(json.loads(body)["id"])] = slot
        used = set(self.slot_of.values())
        self.free = [s for s in range(capacity - 1, -1, -1) if s not in used]

    def _body(self, slot: int) -> bytes:
        row = self._slots[slot]
        (length,) = _LEN.unpack(row[: _LEN.size].tobytes())
        return row[_LEN.size : _LEN.size + length].tobytes() if length else b""

    def __len__(self) -> int:
        return len(self.slot_of)

    def __contains__(self, key: uuid.UUID) -> bool:
        return key in self.slot_of

    def __iter__(self) -> Iterator[uuid.UUID]:
        return iter(list(self.slot_of))

    @property
    def full(self) -> bool:
        """No free slot left."""
        return not self.free

    def fits(self, rec: Record) -> bool:
        """Whether ``rec``'s JSON fits one slot."""
        return len(rec.encoded()) + _LEN.size <= self.slot_bytes

    def put(self, rec: Record) -> bool:
        """Write ``rec`` to a free slot; False when it does not fit a slot.

        The caller evicts first when :attr:`full`.
        """
        if rec.id in self.slot_of:
            return True
        body = rec.encoded()
        if len(body) + _LEN.size > self.slot_bytes:
            return False
        slot = self.free.pop()
        self._vectors[slot] = rec.embedding
        self._slots[slot, _LEN.size : _LEN.size + len(body)] = np.frombuffer(body, dtype=np.uint8)
        self._slots[slot, : _LEN.size] = np.frombuffer(_LEN.pack(len(body)), dtype=np.uint8)
        self.slot_of[rec.id] = slot
        return True

    def get(self, key: uuid.UUID) -> Record:
        """Read ``key``'s record back from the mapped files."""
        slot = self.slot_of[key]
        return Record.from_json(json.loads(self._body(slot)), self._vectors[slot].copy())

    def pop(self, key: uuid.UUID) -> Record:
        """Remove ``key`` and return its record."""
        rec = self.get(key)
        slot = self.slot_of.pop(key)
        self._slots[slot, : _LEN.size] = 0
        self.free.append(slot)
        return rec

    def flush(self) -> None:
        """Write dirty pages to disk (msync)."""
        self.vectors.flush()
        self.slots.flush()
