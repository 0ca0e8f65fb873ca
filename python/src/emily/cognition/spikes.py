"""The live reflex's spikes: ``emily_neural_*`` metrics per cycle, and rate-limited events.

Every cycle's reflex decision (both stages when the second one ran) adds its spikes,
synaptic operations, MACs and **modelled** energy to the ``emily_neural_*`` metrics of
cognition's ``/metrics`` (source ``reflex``; the per-inference gauge is the latest
cycle's pJ). Events on ``events/neural.spikes`` are rate-limited: the first decision is
published at once, and later ones are summed into one :class:`SpikeEvent` per
``1 / max_per_s`` seconds (``samples`` says how many decisions it covers), so a burst of
cycles never floods the bus. Recording runs after the reply, off the cycle's path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from emily.bus.schemas.neural import SpikeEvent
from emily.cognition.neural.energy import OpCounts, Timing, report
from emily.cognition.neural.events import spike_event
from emily.cognition.neural.metrics import NeuralMetrics
from emily.cognition.reflex import ReflexResult

SOURCE = "reflex"
MAX_EVENTS_PER_S = 10.0
"""At most this many spike events per second on the bus."""


class ReflexSpikes:
    """Counts the live reflex's operations into metrics and publishes spike events.

    Parameters
    ----------
    metrics : the ``emily_neural_*`` collectors on cognition's registry.
    publish : sends one event (the service puts it on ``events/neural.spikes``);
        ``None`` records metrics only. It may be set after construction.
    max_per_s : most events per second. precision : the energy preset.
    clock : monotonic seconds (a test may pass its own).
    """

    def __init__(
        self,
        metrics: NeuralMetrics,
        publish: Callable[[SpikeEvent], None] | None = None,
        *,
        max_per_s: float = MAX_EVENTS_PER_S,
        precision: str = "fp32",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_per_s <= 0:
            raise ValueError(f"max_per_s must be positive, got {max_per_s}")
        self.metrics = metrics
        self.publish = publish
        self.interval_s = 1.0 / max_per_s
        self.precision = precision
        self._clock = clock
        self._lock = threading.Lock()
        self._pending = OpCounts()
        self._timing = Timing()
        self._last = -float("inf")
        self.published = 0

    def record(self, result: ReflexResult) -> None:
        """Add one decision's counts (``result.counts``, wall and CPU ms) and publish
        the sum when the last event is at least ``1 / max_per_s`` seconds old."""
        counts = result.counts
        if not counts.samples:
            return
        one = report(counts, Timing(result.latency_ms, result.cpu_ms), self.precision)
        self.metrics.observe_energy(SOURCE, one)
        with self._lock:
            self._pending = self._pending + counts
            self._timing.wall_ms += result.latency_ms
            self._timing.cpu_ms += result.cpu_ms
            if self._clock() - self._last < self.interval_s:
                return
            event = self._take()
        self._send(event)

    def flush(self) -> None:
        """Publish what has been summed since the last event, whatever its age."""
        with self._lock:
            event = self._take() if self._pending.samples else None
        if event is not None:
            self._send(event)

    def _take(self) -> SpikeEvent:
        event = spike_event(SOURCE, report(self._pending, self._timing, self.precision))
        self._pending, self._timing, self._last = OpCounts(), Timing(), self._clock()
        return event

    def _send(self, event: SpikeEvent) -> None:
        if self.publish is not None:
            self.publish(event)
            self.published += 1
