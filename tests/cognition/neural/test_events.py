"""Spike events published over a real Zenoh session pair on loopback."""

from __future__ import annotations

import queue

import torch
import zenoh

from emily.bus import Keys
from emily.bus.endpoints import NEURAL_SPIKES
from emily.bus.messages import decode
from emily.bus.schemas.neural import LayerSpikes, SpikeEvent
from emily.cognition.neural.encoders import latency_encode
from emily.cognition.neural.energy import report, timed
from emily.cognition.neural.events import publish_spikes, spike_event
from emily.cognition.neural.snn import SpikingClassifier

KEYS = Keys("test")


def test_spike_event_round_trips_over_zenoh(
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
) -> None:
    server, client = zenoh_pair
    got: queue.Queue[bytes] = queue.Queue()
    sub = client.declare_subscriber(
        NEURAL_SPIKES.key(KEYS), lambda s: got.put(s.payload.to_bytes())
    )
    try:
        torch.manual_seed(0)
        net = SpikingClassifier(8, 6, 2)
        x = torch.rand(3, 8, generator=torch.Generator().manual_seed(0))
        with timed() as t, torch.no_grad():
            out = net(latency_encode(x, 5))
        rep = report(out.counts, t)
        layer = LayerSpikes(name="hidden", neurons=6, spikes=int(out.hidden_spikes.sum()))
        event = spike_event("reflex", rep, (layer,))
        # the subscriber may need a moment to be known to the publisher's peer
        received = None
        for _ in range(50):
            publish_spikes(server, KEYS, event)
            try:
                received = got.get(timeout=0.1)
                break
            except queue.Empty:
                continue
        assert received is not None, "no spike event arrived over Zenoh"
        decoded = decode(SpikeEvent, received)
        assert decoded == event
        assert decoded.sop == out.counts.sop and decoded.samples == 3
        assert decoded.energy_label == "modelled"
        assert decoded.energy_pj_per_inference == rep.energy_pj
    finally:
        sub.undeclare()
