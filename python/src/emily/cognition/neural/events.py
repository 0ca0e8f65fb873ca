"""Spike events on ``emily/<node>/events/neural.spikes`` (schema in ``emily.bus``)."""

from __future__ import annotations

import time

import zenoh

from emily.bus.endpoints import NEURAL_SPIKES
from emily.bus.keys import Keys
from emily.bus.messages import encode
from emily.bus.schemas.neural import LayerSpikes, SpikeEvent
from emily.cognition.neural.energy import EnergyReport


def spike_event(
    source: str, report: EnergyReport, layers: tuple[LayerSpikes, ...] = ()
) -> SpikeEvent:
    """The :class:`SpikeEvent` of one batch's :class:`EnergyReport` (validated)."""
    c = report.counts
    return SpikeEvent(
        source=source,
        at_unix_ms=time.time() * 1e3,
        samples=max(c.samples, 1),
        spikes=c.spikes,
        sop=c.sop,
        mac=c.mac,
        state_updates=c.state_updates,
        precision=report.precision,
        energy_pj_per_inference=report.energy_pj,
        wall_ms=report.wall_ms,
        cpu_ms=report.cpu_ms,
        layers=layers,
    )


def publish_spikes(session: zenoh.Session, keys: Keys, event: SpikeEvent) -> None:
    """Put ``event`` on ``events/neural.spikes`` of ``keys``' node."""
    session.put(NEURAL_SPIKES.key(keys), encode(event))
