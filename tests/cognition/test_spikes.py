"""The live reflex's spike accounting: metrics per decision, events rate-limited."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from emily.bus.schemas.neural import SpikeEvent
from emily.cognition.neural.metrics import NeuralMetrics
from emily.cognition.reflex import ReflexModel
from emily.cognition.spikes import ReflexSpikes


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    got = registry.get_sample_value(name, {"source": "reflex", **labels})
    return 0.0 if got is None else got


def test_decisions_count_into_metrics_and_events_are_rate_limited(
    fast_reflex: ReflexModel,
) -> None:
    registry, clock, events = CollectorRegistry(), Clock(), []
    spikes = ReflexSpikes(NeuralMetrics(registry), events.append, max_per_s=2.0, clock=clock)
    results = [fast_reflex.decide(t) for t in ("hi there", "thanks a lot", "stop", "who are you")]
    for r in results:
        spikes.record(r)
    # the first decision goes out at once; the next three wait for the window
    assert len(events) == 1 and events[0].samples == 1
    assert events[0].sop == results[0].counts.sop and events[0].energy_label == "modelled"
    clock.now += 0.49
    spikes.record(results[0])
    assert len(events) == 1
    clock.now += 0.02
    spikes.record(results[1])
    assert len(events) == 2
    second = events[1]
    summed = [results[1], results[2], results[3], results[0], results[1]]
    assert second.samples == 5
    assert second.spikes == sum(r.counts.spikes for r in summed)
    assert second.sop == sum(r.counts.sop for r in summed)
    assert second.mac == 0  # the n-gram stage's inputs are spikes: accumulates only
    SpikeEvent.model_validate(second.model_dump())
    # metrics see every decision, not only the published ones
    every = [*results, results[0], results[1]]
    assert value(registry, "emily_neural_inferences_total") == len(every)
    assert value(registry, "emily_neural_spikes_total") == sum(r.counts.spikes for r in every)
    assert value(registry, "emily_neural_synaptic_ops_total") == sum(r.counts.sop for r in every)
    pj = sum(r.counts.energy_pj("fp32") for r in every)
    assert value(
        registry, "emily_neural_modelled_energy_picojoules_total", precision="fp32"
    ) == pytest.approx(pj)
    last = value(
        registry, "emily_neural_modelled_energy_picojoules_per_inference", precision="fp32"
    )
    assert last == pytest.approx(results[1].counts.energy_pj("fp32"))
    spikes.flush()
    assert len(events) == 2  # nothing left to send
    spikes.record(results[2])
    spikes.flush()
    assert len(events) == 3 and events[2].samples == 1


def test_a_non_positive_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="max_per_s"):
        ReflexSpikes(NeuralMetrics(CollectorRegistry()), max_per_s=0)
