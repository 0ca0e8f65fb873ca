"""The mutable record of one cognitive cycle while it runs (:class:`Cycle`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from emily.bus.schemas.cognition import ObserveRequest
from emily.bus.schemas.facts import Fact
from emily.bus.schemas.memory import Hit
from emily.cognition.allostasis import Modulation
from emily.cognition.reflex import ReflexResult
from emily.ids import uuid7

#: The modulation of a cycle before allostasis has set it.
NEUTRAL = Modulation(gamma=16.0, alpha_gain=1.0, reflex_shift=0.0, temperature=1.0)
#: The reflex result of a cycle before the reflex has run: out of scope, not fired.
NO_REFLEX = ReflexResult("oos", 0.0, 1.0, False, None, None, 0.0, 0)


@dataclass
class Cycle:
    """Mutable record of one cycle while it runs.

    ``latencies`` are per stage (ms); ``after`` holds the calls that run once the reply
    has been sent (:meth:`~emily.cognition.cycle.Cognition.finish`).
    """

    request: ObserveRequest
    id: uuid.UUID = field(default_factory=uuid7)
    t0: float = field(default_factory=time.perf_counter)
    latencies: dict[str, float] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    cited: list[uuid.UUID] = field(default_factory=list)
    act: str = "statement"
    told: bool = False
    answer_id: uuid.UUID = field(default_factory=uuid7)
    embedding: list[float] | None = None
    #: the policy taken stands in for a better one that a missing service ruled out
    substitute: bool = False
    ttft_ms: float | None = None
    mod: Modulation = field(default_factory=lambda: NEUTRAL)
    result: ReflexResult = field(default_factory=lambda: NO_REFLEX)
    reflex_ms: float = 0.0
    after: list[tuple[Callable[..., object], tuple[object, ...]]] = field(default_factory=list)

    def timed(self, stage: str, started: float) -> float:
        """Record ``stage`` as having run from ``started`` until now; returns ms."""
        ms = (time.perf_counter() - started) * 1e3
        self.latencies[stage] = self.latencies.get(stage, 0.0) + ms
        return ms
