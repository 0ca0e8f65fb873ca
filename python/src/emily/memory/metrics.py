"""Prometheus metrics of the memory service (``emily_memory_*``), on its own registry."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from emily.bus.schemas.memory import PoolStats
from emily.observe.metrics import service_registry

TIERS = ("L0", "L1", "L2", "L3")


class MemoryMetrics:
    """Counters of tier moves, hits, misses, trimmed events and heap trims; gauges of
    tiers, pool, outbox, the event log's size and the resident set after a heap trim.

    Parameters
    ----------
    registry : the service's own registry (a fresh one per test).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else service_registry()
        r = self.registry
        self.promotions = Counter(
            "emily_memory_promotions", "Episodes moved up a tier", ["from", "to"], registry=r
        )
        self.demotions = Counter(
            "emily_memory_demotions", "Episodes moved down a tier", ["from", "to"], registry=r
        )
        self.hits = Counter(
            "emily_memory_hits", "Recalled episodes by serving tier", ["tier"], registry=r
        )
        self.misses = Counter(
            "emily_memory_misses",
            "Recalled episodes no cache tier held (read from L3)",
            registry=r,
        )
        self.stored = Counter("emily_memory_stored", "Episodes committed to Postgres", registry=r)
        self.withheld = Counter(
            "emily_memory_withheld",
            "Episodes not stored because an earlier forget covered them (forget marks)",
            registry=r,
        )
        self.forget_marks = Gauge(
            "emily_memory_forget_marks", "Forget marks kept (forget_marks_days)", registry=r
        )
        self.queued = Counter(
            "emily_memory_outbox_queued", "Episodes written to the outbox", registry=r
        )
        self.tier_size = Gauge(
            "emily_memory_tier_size", "Episodes held per tier", ["tier"], registry=r
        )
        self.outbox_pending = Gauge(
            "emily_memory_outbox_pending", "Episodes waiting in the outbox", registry=r
        )
        self.events_kept = Gauge(
            "emily_memory_events_kept", "Events in the event log at its last trim", registry=r
        )
        self.events_trimmed = Counter(
            "emily_memory_events_trimmed",
            "Events deleted from the event log by its retention",
            registry=r,
        )
        self.heap_trims = Counter(
            "emily_memory_heap_trims",
            "Times the maintenance loop gave freed heap back to the kernel (malloc_trim)",
            registry=r,
        )
        self.heap_returned = Counter(
            "emily_memory_heap_returned_bytes",
            "Resident bytes the heap trims gave back (the resident set before a trim less after)",
            registry=r,
        )
        self.resident_after_trim = Gauge(
            "emily_memory_resident_after_trim_bytes",
            "The service's resident set right after its last heap trim: what it keeps, "
            "without the freed heap it holds between trims",
            registry=r,
        )
        self.embed_shapes = Gauge(
            "emily_memory_embed_shapes",
            "Input shapes (batch size, padded length) the embedder has run; oneDNN keeps "
            "kernels for each, so the resident set steps up with a new one",
            registry=r,
        )
        self.index_slots = Gauge(
            "emily_memory_index_slots",
            "Slots the in-process HNSW index has used, live and removed: a removed "
            "episode's slot stays until the index is rebuilt, so the graph's memory "
            "follows this count rather than the episode count",
            registry=r,
        )
        self.recall_seconds = Histogram(
            "emily_memory_recall_seconds",
            "Recall latency by scope",
            ["scope"],
            buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 2.0),
            registry=r,
        )
        for tier in TIERS:
            self.hits.labels(tier=tier)
        # every move between neighbouring tiers is exported from the start (at 0), so a
        # dashboard or alert reads a series before the first move happens
        for upper, lower in pairwise(TIERS):
            self.promotions.labels(**{"from": lower, "to": upper})
            self.demotions.labels(**{"from": upper, "to": lower})
        self._pool: dict[str, Gauge] = {}

    def watch_pool(self, stats: Callable[[], PoolStats]) -> None:
        """Expose ``emily_memory_pool_{size,available,waiting,max_size,...}`` from ``stats``."""
        for field in ("min_size", "max_size", "size", "available", "waiting", "requests", "errors"):
            gauge = Gauge(
                f"emily_memory_pool_{field}", f"Connection pool {field}", registry=self.registry
            )
            gauge.set_function(_reader(stats, field))
            self._pool[field] = gauge


def _reader(stats: Callable[[], PoolStats], name: str) -> Callable[[], float]:
    def read() -> float:
        return float(getattr(stats(), name))

    return read
