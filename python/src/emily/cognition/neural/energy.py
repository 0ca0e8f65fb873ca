"""Modelled energy: operation counts priced with Horowitz's 45 nm figures.

This is **modelled** energy, not a measurement of this CPU. A spiking layer costs one
accumulate (AC) per synaptic operation, SOP = spikes × fan-out (a binary spike adds the
weight, no multiply); a non-spiking layer, the encoding layer included, costs one
multiply-accumulate (MAC) per weight used. Prices per operation (Horowitz, ISSCC 2014,
45 nm):

=========  ========  =========
precision  E_AC pJ   E_MAC pJ
=========  ========  =========
fp32       0.9       4.6
fp16       0.4       1.5
int8       0.03      0.23
=========  ========  =========

Membrane updates (one per neuron per step) are counted in ``state_updates`` and shown
beside the figure, but not priced, as in the SOP model of the references above. Reports
carry the measured wall time and CPU time next to the modelled energy, so nobody
mistakes one for the other. Nothing here exists in snntorch, hence written by hand.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import torch

from emily.cognition.neural.errors import NeuralConfigError

Precision = Literal["fp32", "fp16", "int8"]
ENERGY_LABEL: Literal["modelled"] = "modelled"


@dataclass(frozen=True)
class EnergyPreset:
    """Energy per operation (pJ) at one precision, 45 nm (Horowitz 2014)."""

    name: Precision
    e_ac_pj: float
    e_mac_pj: float


PRESETS: dict[str, EnergyPreset] = {
    "fp32": EnergyPreset("fp32", 0.9, 4.6),
    "fp16": EnergyPreset("fp16", 0.4, 1.5),
    "int8": EnergyPreset("int8", 0.03, 0.23),
}


def preset(name: str) -> EnergyPreset:
    """The :class:`EnergyPreset` called ``name`` (``fp32``, ``fp16`` or ``int8``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise NeuralConfigError(
            f"unknown energy preset {name!r}; use one of {sorted(PRESETS)}"
        ) from None


@dataclass(frozen=True)
class OpCounts:
    """Operations of a batch of inferences.

    Attributes
    ----------
    samples : inferences covered by the counts.
    spikes : spikes emitted (all spiking populations, including encoded input).
    sop : synaptic operations, Σ spikes × fan-out (priced as AC).
    mac : multiply-accumulates of non-spiking layers, the encoder included.
    state_updates : neuron membrane updates (neurons × steps); reported, not priced.
    """

    samples: int = 0
    spikes: int = 0
    sop: int = 0
    mac: int = 0
    state_updates: int = 0

    def __add__(self, other: OpCounts) -> OpCounts:
        return OpCounts(
            self.samples + other.samples,
            self.spikes + other.spikes,
            self.sop + other.sop,
            self.mac + other.mac,
            self.state_updates + other.state_updates,
        )

    def merge(self, other: OpCounts) -> OpCounts:
        """Counts of two stages of the *same* samples (sample count not added)."""
        return OpCounts(
            max(self.samples, other.samples),
            self.spikes + other.spikes,
            self.sop + other.sop,
            self.mac + other.mac,
            self.state_updates + other.state_updates,
        )

    def energy_pj(self, precision: str = "fp32") -> float:
        """Total modelled energy (pJ): ``sop · E_AC + mac · E_MAC``."""
        p = preset(precision)
        return self.sop * p.e_ac_pj + self.mac * p.e_mac_pj

    def per_inference_pj(self, precision: str = "fp32") -> float:
        """Modelled energy per inference (pJ); 0 when no samples were counted."""
        return self.energy_pj(precision) / self.samples if self.samples else 0.0


def sop(spikes: torch.Tensor, fan_out: int) -> int:
    """Synaptic operations of ``spikes`` (any shape, {0, 1}) into ``fan_out`` targets each."""
    return int(spikes.sum().item()) * int(fan_out)


def is_binary(x: torch.Tensor) -> bool:
    """Whether every element of ``x`` is 0 or 1 (a spike train, not real-valued input)."""
    return bool(((x == 0) | (x == 1)).all().item())


def input_layer_counts(x: torch.Tensor, fan_out: int) -> OpCounts:
    """Counts of the dense layer that ``x`` ``[T, B, F]`` drives into ``fan_out`` neurons.

    Binary input is spikes: SOP = spikes × fan-out (accumulates), and the spikes are
    counted. Real-valued input (e.g. embeddings held as currents) is multiplied by every
    weight it meets: ``T · B · F · fan_out`` MACs, and no spikes.
    """
    if is_binary(x):
        return OpCounts(spikes=int(x.sum().item()), sop=sop(x, fan_out))
    return OpCounts(mac=x.numel() * int(fan_out))


def linear_macs(n_in: int, n_out: int, samples: int = 1) -> int:
    """MACs of a dense ``n_in → n_out`` layer over ``samples`` inputs (bias adds ignored)."""
    return int(n_in) * int(n_out) * int(samples)


def mlp_counts(sizes: list[int], samples: int) -> OpCounts:
    """Counts of a non-spiking MLP with layer widths ``sizes`` (e.g. ``[64, 128, 10]``)."""
    macs = sum(linear_macs(a, b, samples) for a, b in itertools.pairwise(sizes))
    return OpCounts(samples=samples, mac=macs)


@dataclass
class Timing:
    """Measured wall time and CPU time of a block (ms), filled in by :func:`timed`."""

    wall_ms: float = 0.0
    cpu_ms: float = 0.0


@contextmanager
def timed() -> Iterator[Timing]:
    """Measure wall and process CPU time of the ``with`` block into a :class:`Timing`."""
    out = Timing()
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        yield out
    finally:
        out.wall_ms = (time.perf_counter() - w0) * 1e3
        out.cpu_ms = (time.process_time() - c0) * 1e3


@dataclass(frozen=True)
class EnergyReport:
    """Modelled energy next to measured time, per inference.

    Attributes
    ----------
    counts : the :class:`OpCounts` of the batch.
    precision : energy preset used.
    energy_pj : modelled energy per inference (pJ).
    wall_ms, cpu_ms : measured wall and CPU time per inference (ms) on this machine.
    label : always ``"modelled"``: the energy is a model, the times are measurements.
    """

    counts: OpCounts
    precision: Precision
    energy_pj: float
    wall_ms: float
    cpu_ms: float
    label: Literal["modelled"] = field(default=ENERGY_LABEL)

    def __str__(self) -> str:
        return (
            f"{self.energy_pj:,.0f} pJ/inference ({self.label}, 45 nm {self.precision}); "
            f"measured {self.wall_ms:.3f} ms wall, {self.cpu_ms:.3f} ms CPU per inference"
        )


def report(counts: OpCounts, timing: Timing, precision: str = "fp32") -> EnergyReport:
    """Build an :class:`EnergyReport` of a batch from its counts and measured time."""
    p = preset(precision)
    n = max(counts.samples, 1)
    return EnergyReport(
        counts=counts,
        precision=p.name,
        energy_pj=counts.per_inference_pj(p.name),
        wall_ms=timing.wall_ms / n,
        cpu_ms=timing.cpu_ms / n,
    )
