"""The global workspace: a limited-capacity stage that candidates compete to enter.

Candidates (the percept, recalled memories, active goals, interoceptive signals and the
reflex result) carry a raw relevance score. Their salience is ``gain[kind] * score``;
items already in the workspace compete again with their activation decayed by
``decay``. Attention is a softmax over all saliences followed by a top-k selection
(``k = capacity``), as in the shared global workspace of Goyal et al. (2022, "Coordination
among neural modules through a shared global workspace"). An item ignites (enters)
only when its attention weight reaches ``ignition``. Ties keep the entry order, which
alpha gating may set. Every cycle's winners are broadcast to every subscriber.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)
KINDS = ("percept", "memory", "goal", "interoception", "reflex")


@dataclass(frozen=True)
class Candidate:
    """Something that wants workspace access.

    key : identity (an item with the same key replaces its older self).
    kind : one of :data:`KINDS`. content : short text. score : raw relevance, >= 0.
    """

    key: str
    kind: str
    content: str
    score: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"candidate kind {self.kind!r} is not one of {KINDS}")
        if not math.isfinite(self.score) or self.score < 0:
            raise ValueError(f"candidate score must be finite and >= 0, got {self.score}")


@dataclass(frozen=True)
class Item:
    """A workspace occupant: the candidate, its salience and its attention weight."""

    candidate: Candidate
    salience: float
    weight: float


@dataclass(frozen=True)
class Broadcast:
    """One cycle's contents (best first) and whether anything ignited."""

    cycle: int
    items: tuple[Item, ...]
    ignited: bool


@dataclass(frozen=True)
class WorkspaceConfig:
    """capacity : most items; decay : carry-over of an occupant's activation per cycle;
    ignition : least attention weight to enter; temperature : softmax temperature."""

    capacity: int = 7
    decay: float = 0.5
    ignition: float = 0.02
    temperature: float = 1.0


@dataclass
class GlobalWorkspace:
    """Limited-capacity competition and broadcast (see the module docstring)."""

    config: WorkspaceConfig = field(default_factory=WorkspaceConfig)

    def __post_init__(self) -> None:
        if self.config.capacity < 1:
            raise ValueError("workspace capacity must be at least 1")
        self._items: list[Item] = []
        self._subscribers: list[Callable[[Broadcast], None]] = []
        self._lock = threading.Lock()
        self._cycle = 0

    @property
    def contents(self) -> tuple[Item, ...]:
        """Current occupants, best first."""
        with self._lock:
            return tuple(self._items)

    def subscribe(self, fn: Callable[[Broadcast], None]) -> Callable[[], None]:
        """Call ``fn`` with every broadcast; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return unsubscribe

    def compete(
        self,
        candidates: Sequence[Candidate],
        gains: Mapping[str, float] | None = None,
        order: Sequence[int] | None = None,
    ) -> Broadcast:
        """Run one competition and broadcast the winners.

        Parameters
        ----------
        candidates : this cycle's candidates.
        gains : salience gain per kind (alpha gating, allostasis); 1 when absent.
        order : entry order of ``candidates`` (a permutation of their indices) from alpha
            gating; ties in salience go to the earlier entry. Input order when ``None``.

        Returns
        -------
        The :class:`Broadcast`; at most ``capacity`` items, best first.
        """
        gains = gains or {}
        seq = list(order) if order is not None else list(range(len(candidates)))
        if sorted(seq) != list(range(len(candidates))):
            raise ValueError("order must be a permutation of the candidate indices")
        with self._lock:
            self._cycle += 1
            pool: dict[str, tuple[int, Candidate, float]] = {}
            rank = 0
            for item in self._items:  # carried over, decayed; they entered earlier
                pool[item.candidate.key] = (rank, item.candidate, item.salience * self.config.decay)
                rank += 1
            for i in seq:
                c = candidates[i]
                sal = max(0.0, float(gains.get(c.kind, 1.0))) * c.score
                pool[c.key] = (rank, c, sal)
                rank += 1
            entries = sorted(pool.values(), key=lambda e: (-e[2], e[0]))
            t = self.config.temperature
            top = max((e[2] for e in entries), default=0.0)
            expo = [math.exp((e[2] - top) / t) for e in entries]
            z = sum(expo) or 1.0
            winners = [
                Item(candidate=e[1], salience=e[2], weight=w / z)
                for e, w in zip(entries, expo, strict=True)
                if w / z >= self.config.ignition
            ][: self.config.capacity]
            self._items = winners
            subscribers = list(self._subscribers)
            cast = Broadcast(cycle=self._cycle, items=tuple(winners), ignited=bool(winners))
        for fn in subscribers:
            try:
                fn(cast)
            except Exception:  # one failing subscriber must not starve the others
                log.exception("workspace subscriber %r failed", fn)
        return cast
