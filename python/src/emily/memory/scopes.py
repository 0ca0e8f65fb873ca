"""Partitions of the in-process index by user: who each label belongs to, and exact
search within a small user's episodes.

Every recall is scoped to one user. Searching the shared HNSW graph for a user who
holds 1% of it needs about a hundred times more candidates to keep k of that user's,
so a scoped recall would be slow and miss neighbours. Instead each user is a
partition of labels:

- a small partition (at most :data:`EXACT_MAX` episodes) keeps its vectors in RAM and is
  answered by exact search, a masked matrix product (recall 1.0);
- a large one is answered by the shared graph with over-fetch in proportion to its share
  of the index (the single-user laptop is the extreme, a share of 1);
- a large one with a small share gets a graph of its own, built in the background on
  its first recall (Postgres answers until it is there) and kept in step with stores
  and removals; it is not saved, so a restart builds it again when first needed.

Each label also carries its agent, role, act and session as small integer codes, so
the dialogue filters of a recall are NumPy masks, not per-record Python, and its
position within its partition: every per-label field is a column of arrays, about 22
bytes per label, where Python dicts and ints would take some hundred.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, get_args

import hnswlib
import numpy as np
import numpy.typing as npt

from emily.bus.schemas.dialogue import DEFAULT_USER, Act, Role
from emily.bus.schemas.memory import EMBED_DIM

#: Largest partition answered by exact search from vectors kept in RAM.
EXACT_MAX = 4096
#: The scope of one episode: ``(user, agent, role, act, session)``.
Scope = tuple[str, str | None, str, str, str | None]
DEFAULT_SCOPE: Scope = (DEFAULT_USER, None, "user", "statement", None)
ROLES: tuple[str, ...] = get_args(Role)
ACTS: tuple[str, ...] = get_args(Act)
_NONE = -1  # code of an absent agent or session, and of a label not yet assigned

Labels = npt.NDArray[np.int64]


@dataclass
class Part:
    """One user's live labels, and their vectors ``(n, 384)`` while the part is small."""

    labels: Labels = field(default_factory=lambda: np.empty(16, np.int64))
    n: int = 0
    vecs: npt.NDArray[np.float32] | None = field(
        default_factory=lambda: np.empty((16, EMBED_DIM), np.float32)
    )
    #: the part's own HNSW graph (labels are the shared index's), once built
    graph: hnswlib.Index | None = None
    building: bool = False

    def live(self) -> Labels:
        """The labels, shape ``(n,)``."""
        return self.labels[: self.n]

    def add(self, label: int, vec: npt.NDArray[np.float32] | None) -> int:
        """Append ``label`` (with its vector ``(384,)`` when known); returns its row."""
        if self.n == len(self.labels):
            self.labels = np.resize(self.labels, 2 * self.n)
        self.labels[self.n] = label
        if self.graph is not None:
            if vec is None:
                self.graph = None  # out of step: built again when next needed
            else:
                if self.graph.get_current_count() >= self.graph.get_max_elements():
                    self.graph.resize_index(2 * self.graph.get_max_elements())
                self.graph.add_items(vec.reshape(1, -1), np.array([label]))
        if self.vecs is not None:
            if vec is None or self.n >= EXACT_MAX:
                self.vecs = None  # too large (or no vector known): the shared graph answers
            else:
                if self.n == len(self.vecs):
                    grown = np.empty((2 * self.n, EMBED_DIM), np.float32)
                    grown[: self.n] = self.vecs[: self.n]
                    self.vecs = grown
                self.vecs[self.n] = vec
        self.n += 1
        return self.n - 1

    def remove(self, i: int) -> int:
        """Swap-remove row ``i`` (the last label takes it); returns the label moved
        into row ``i``, or -1 when ``i`` was the last row."""
        if self.graph is not None:
            self.graph.mark_deleted(int(self.labels[i]))
        last = self.n - 1
        moved = -1
        if i != last:
            moved = int(self.labels[last])
            self.labels[i] = moved
            if self.vecs is not None:
                self.vecs[i] = self.vecs[last]
        self.n = last
        return moved


class ScopeTable:
    """Per-label scope codes and the per-user partitions of an index's labels.

    Not thread-safe by itself: :class:`~emily.memory.index.AnnIndex` holds its lock.
    """

    def __init__(self) -> None:
        self.code: dict[str, int] = {}
        self.user = np.full(16, _NONE, np.int32)
        self.agent = np.full(16, _NONE, np.int32)
        self.session = np.full(16, _NONE, np.int32)
        self.role = np.zeros(16, np.int8)
        self.act = np.zeros(16, np.int8)
        self.row = np.zeros(16, np.int32)  # the label's row in its partition
        self.parts: dict[int, Part] = {}

    def arrays(self) -> dict[str, np.ndarray[Any, Any] | None]:
        """The table's NumPy columns by name, and each partition's labels and vectors."""
        out: dict[str, np.ndarray[Any, Any] | None] = {
            n: getattr(self, n) for n in ("user", "agent", "session", "role", "act", "row")
        }
        for code, part in self.parts.items():
            out[f"part{code}.labels"], out[f"part{code}.vecs"] = part.labels, part.vecs
        return out

    def _intern(self, name: str | None) -> int:
        if name is None:
            return _NONE
        got = self.code.get(name)
        if got is None:
            got = self.code[name] = len(self.code)
        return got

    def reserve(self, labels: int) -> None:
        """Room for labels ``0 .. labels - 1`` (new ones unassigned)."""
        if labels <= len(self.user):
            return
        size = max(labels, 2 * len(self.user))
        for name, fill in (("user", _NONE), ("agent", _NONE), ("session", _NONE)):
            old = getattr(self, name)
            new = np.full(size, fill, np.int32)
            new[: len(old)] = old
            setattr(self, name, new)
        for name, dtype in (("role", np.int8), ("act", np.int8), ("row", np.int32)):
            old = getattr(self, name)
            new = np.zeros(size, dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def assign(self, label: int, scope: Scope, vec: npt.NDArray[np.float32] | None) -> None:
        """Put ``label`` in its user's partition (moving it if it was in another)."""
        self.reserve(label + 1)
        self.drop(label)
        user, agent, role, act, session = scope
        code = self._intern(user)
        self.user[label] = code
        self.agent[label] = self._intern(agent)
        self.session[label] = self._intern(session)
        self.role[label] = ROLES.index(role)
        self.act[label] = ACTS.index(act)
        self.row[label] = self.parts.setdefault(code, Part()).add(label, vec)

    def drop(self, label: int) -> None:
        """Take ``label`` out of its partition (a forgotten or reassigned episode)."""
        if label >= len(self.user):
            return
        code = int(self.user[label])
        if code != _NONE:
            part = self.parts[code]
            moved = part.remove(int(self.row[label]))
            if moved >= 0:
                self.row[moved] = self.row[label]
            if not part.n:
                del self.parts[code]
            self.user[label] = _NONE

    def assigned(self, label: int) -> bool:
        """Whether ``label`` is in a partition."""
        return label < len(self.user) and self.user[label] != _NONE

    def assigned_mask(self, labels: Labels) -> npt.NDArray[np.bool_]:
        """Which of ``labels`` (each below the reserved size) are in a partition."""
        out: npt.NDArray[np.bool_] = self.user[labels] != _NONE
        return out

    def count(self, user: str) -> int:
        """How many labels ``user`` has."""
        part = self.parts.get(self.code.get(user, _NONE))
        return 0 if part is None else part.n

    def part(self, user: str) -> Part | None:
        """``user``'s partition, if it has any label."""
        return self.parts.get(self.code.get(user, _NONE))

    def mask(
        self,
        labels: Labels,
        agent: str | None,
        roles: list[str] | None,
        acts: list[str] | None,
        session: str | None,
    ) -> npt.NDArray[np.bool_] | None:
        """Which of ``labels`` pass the dialogue filters; ``None`` when none is set."""
        keep: npt.NDArray[np.bool_] | None = None

        def both(m: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
            return m if keep is None else keep & m

        for value, column in ((agent, self.agent), (session, self.session)):
            if value is not None:
                keep = both(column[labels] == self.code.get(value, -2))
        if roles is not None:
            keep = both(np.isin(self.role[labels], [ROLES.index(r) for r in roles]))
        if acts is not None:
            keep = both(np.isin(self.act[labels], [ACTS.index(a) for a in acts]))
        return keep

    def in_scope(
        self,
        labels: Labels,
        user: str,
        agent: str | None,
        roles: list[str] | None,
        acts: list[str] | None,
        session: str | None,
    ) -> npt.NDArray[np.bool_]:
        """Which of ``labels`` (any labels, e.g. a graph search's) are in the scope."""
        ok: npt.NDArray[np.bool_] = self.user[labels] == self.code.get(user, -2)
        extra = self.mask(labels, agent, roles, acts, session)
        return ok if extra is None else ok & extra


def exact_top(
    queries: npt.NDArray[np.float32], vecs: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Rows of ``vecs`` ``(n, 384)`` nearest each query ``(b, 384)``: indices and inner
    products, both ``(b, min(k, n))``, best first."""
    scores = queries @ vecs.T
    n = min(k, vecs.shape[0])
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    top = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(top, order, axis=1)
