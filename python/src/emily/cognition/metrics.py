"""Prometheus metrics of the cognition service (its own registry).

``emily_cognition_stage_seconds{stage}``: histogram per stage (reflex, embed, workspace,
policy, recall, deliberate, total), buckets from 0.1 ms to 10 s. The host's reflex SLO
alert reads ``emily_cognition_stage_seconds_bucket{stage="reflex"}``. The live reflex's
``emily_neural_*`` series (spikes, synaptic operations, MACs, modelled pJ) are on the
same registry (:mod:`emily.cognition.spikes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from emily.bus.schemas.cognition import Missing
from emily.cognition.neural.metrics import NeuralMetrics
from emily.observe.metrics import service_registry

M = TypeVar("M", Histogram, Counter, Gauge)

BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


@dataclass
class CognitionMetrics:
    """Stage latencies, answering tier, G per policy, missing dependencies, episodes."""

    registry: CollectorRegistry = field(default_factory=service_registry)

    def __post_init__(self) -> None:
        r = self.registry
        self.stage = Histogram(
            "emily_cognition_stage_seconds",
            "Latency of one cycle stage (s)",
            ["stage"],
            buckets=BUCKETS_S,
            registry=r,
        )
        self.tier = Counter(
            "emily_cognition_tier_total", "Cycles answered, by tier", ["tier"], registry=r
        )
        self.policy_g = Gauge(
            "emily_cognition_policy_expected_free_energy",
            "Expected free energy G of each policy in the last cycle (nats)",
            ["policy"],
            registry=r,
        )
        self.missing = Counter(
            "emily_cognition_degraded_total",
            "Cycles that ran without a dependency",
            ["missing"],
            registry=r,
        )
        # every dependency a cycle can miss is exported at 0 from the start
        for missing in get_args(Missing):
            self.missing.labels(missing=missing)
        self.episodes = Counter(
            "emily_cognition_episodes_total",
            "Episodes handed to memory, by outcome",
            ["outcome"],
            registry=r,
        )
        self.bad = Counter(
            "emily_cognition_bad_requests_total", "Observations rejected", registry=r
        )
        self.pending = Gauge(
            "emily_cognition_pending_episodes",
            "Episodes waiting for memory to come back",
            registry=r,
        )
        self.learned = Counter(
            "emily_cognition_learning_updates_total",
            "Outcomes the agent learned from, by source (feedback, correction, ...)",
            ["source"],
            registry=r,
        )
        self.neural = NeuralMetrics(r)
        self._children: dict[tuple[int, str], Any] = {}

    def child(self, metric: M, label: str) -> M:
        """``metric.labels(label)``, looked up once and kept (a cycle records about ten)."""
        key = (id(metric), label)
        found = self._children.get(key)
        if found is None:
            found = self._children.setdefault(key, metric.labels(label))
        return found  # type: ignore[no-any-return]
