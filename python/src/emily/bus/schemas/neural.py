"""Messages of the neural building blocks, published on ``events/neural.spikes``.

A :class:`SpikeEvent` reports the spikes, synaptic operations and **modelled** energy of
a batch of inferences of one spiking component (the reflex tier, the spiking GNN),
next to the wall and CPU time measured on the machine that ran it. The energy is a
model (Horowitz 2014, 45 nm), never a measurement; ``energy_label`` says so on the wire.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from emily.bus.messages import Message

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


class LayerSpikes(Message):
    """Spikes of one population during the batch."""

    name: str = Field(pattern=NAME_PATTERN)
    neurons: int = Field(ge=1, le=10**9)
    spikes: int = Field(ge=0)


class SpikeEvent(Message):
    """Spike counts and modelled energy of ``samples`` inferences of ``source``.

    Counts cover the whole batch; ``energy_pj_per_inference``, ``wall_ms`` and ``cpu_ms``
    are per inference.
    """

    source: str = Field(pattern=NAME_PATTERN)
    at_unix_ms: float = Field(ge=0)
    samples: int = Field(ge=1)
    spikes: int = Field(ge=0)
    sop: int = Field(ge=0)
    mac: int = Field(ge=0)
    state_updates: int = Field(ge=0)
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    energy_pj_per_inference: float = Field(ge=0)
    energy_label: Literal["modelled"] = "modelled"
    wall_ms: float = Field(ge=0)
    cpu_ms: float = Field(ge=0)
    layers: tuple[LayerSpikes, ...] = Field(default=(), max_length=64)
