"""Tier L0: the hottest embeddings as one tensor, for batched exact search.

On a GPU when torch sees one, else the same code on the CPU. Rows are fixed slots;
each row's user is a code in a tensor beside them, so a hot search within one user's
episodes is one masked matrix product; other filters are checked on the held records.
"""

from __future__ import annotations

import uuid
from typing import cast

import numpy as np
import numpy.typing as npt
import torch

from emily.bus.schemas.memory import EMBED_DIM, RecallFilters
from emily.memory.filters import matches
from emily.memory.record import Record, Vector


def pick_device(choice: str = "auto") -> torch.device:
    """``cuda`` when asked or when ``auto`` finds a GPU, else ``cpu``."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


class L0:
    """Exact inner-product search over at most ``capacity`` unit vectors.

    Parameters
    ----------
    capacity : rows of the tensor (episodes).
    device : where the tensor lives.
    """

    def __init__(self, capacity: int, device: torch.device) -> None:
        self.capacity = capacity
        self.device = device
        self.vectors = torch.zeros((capacity, EMBED_DIM), dtype=torch.float32, device=device)
        self.valid = torch.zeros(capacity, dtype=torch.bool, device=device)
        self.owner = torch.full((capacity,), -1, dtype=torch.int32, device=device)
        self.user_code: dict[str, int] = {}
        self.records: dict[uuid.UUID, Record] = {}
        self.slot_of: dict[uuid.UUID, int] = {}
        self.key_at: list[uuid.UUID | None] = [None] * capacity
        self.free = list(range(capacity - 1, -1, -1))

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, key: uuid.UUID) -> bool:
        return key in self.records

    @property
    def full(self) -> bool:
        """No free row left."""
        return not self.free

    def put(self, rec: Record) -> None:
        """Hold ``rec`` in a free row (the caller evicts first when :attr:`full`)."""
        if rec.id in self.records:
            return
        slot = self.free.pop()
        self.vectors[slot] = torch.from_numpy(np.ascontiguousarray(rec.embedding)).to(self.device)
        self.valid[slot] = True
        self.owner[slot] = self.user_code.setdefault(rec.user, len(self.user_code))
        self.records[rec.id] = rec
        self.slot_of[rec.id] = slot
        self.key_at[slot] = rec.id

    def pop(self, key: uuid.UUID) -> Record:
        """Remove and return ``key``'s record."""
        slot = self.slot_of.pop(key)
        self.valid[slot] = False
        self.owner[slot] = -1
        self.key_at[slot] = None
        self.free.append(slot)
        return self.records.pop(key)

    def search(
        self,
        queries: Vector,
        k: int,
        filters: RecallFilters | None = None,
        *,
        user: str | None = None,
        agent: str | None = None,
    ) -> list[list[tuple[uuid.UUID, float]]]:
        """Exact top-``k`` for a batch ``queries`` of shape ``(b, 384)`` or ``(384,)``.

        Returns one list of ``(id, cosine similarity)`` per query, best first. The
        scope (``user``, ``agent``) and filters are applied to the held records before
        ranking, so k matches come back when L0 holds k. ``user=None`` searches every
        user's rows (tools and tests only).
        """
        if not self.records:
            return [[] for _ in range(np.atleast_2d(queries).shape[0])]
        if user is not None:
            code = self.user_code.get(user)
            if code is None:
                return [[] for _ in range(np.atleast_2d(queries).shape[0])]
            mask = self.valid & (self.owner == code)
        else:
            mask = self.valid
        if (filters is not None and not filters.empty) or agent is not None:
            mask = mask.clone()
            for key, slot in self.slot_of.items():
                if not matches(filters or RecallFilters(), self.records[key], user, agent):
                    mask[slot] = False
        n = min(k, int(mask.sum())) if mask is not self.valid else min(k, len(self.records))
        if n == 0:
            return [[] for _ in range(np.atleast_2d(queries).shape[0])]
        if self.device.type == "cpu":  # NumPy views of the same memory: no per-op dispatch
            indices, values = _top_numpy(
                np.atleast_2d(np.asarray(queries, dtype=np.float32)),
                self.vectors.numpy(),
                mask.numpy(),
                n,
            )
        else:
            q = torch.as_tensor(np.atleast_2d(queries), dtype=torch.float32, device=self.device)
            scores = q @ self.vectors.T
            scores[:, ~mask] = -torch.inf
            top = torch.topk(scores, n, dim=1)
            values, indices = top.values.cpu().tolist(), top.indices.cpu().tolist()
        key_at = cast("list[uuid.UUID]", self.key_at)  # every selected row is held
        return [
            [(key_at[i], float(s)) for i, s in zip(row_i, row_s, strict=True)]
            for row_i, row_s in zip(indices, values, strict=True)
        ]


def _top_numpy(
    queries: npt.NDArray[np.float32],
    vectors: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_],
    n: int,
) -> tuple[list[list[int]], list[list[float]]]:
    """Row indices and scores of the ``n`` best of ``queries @ vectors.T`` among ``mask``."""
    scores = queries @ vectors.T
    if not mask.all():
        scores[:, ~mask] = -np.inf
    rows, values = [], []
    for row in scores:  # usually one query
        part = np.argpartition(row, -n)[-n:]
        best = part[np.argsort(-row[part], kind="stable")]
        rows.append(best.tolist())
        values.append(row[best].tolist())
    return rows, values
