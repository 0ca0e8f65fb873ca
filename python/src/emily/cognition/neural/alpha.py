"""Alpha-band (8–12 Hz) gating by inhibition, with phase coding of salience.

Alpha oscillations are read as pulsed inhibition (Jensen & Mazaheri 2010; Jensen,
Gips, Bergmann & Bonnefond 2014). Inhibition at time ``t`` (ms) is

    I(t) = depth · (1 + cos(2π f t / 1000 + φ₀)) / 2   ∈ [0, depth]

and the gain applied to inputs is ``g(t) = 1 − I(t)`` ∈ [1 − depth, 1] ⊂ [0, 1]. An item
of salience ``s ∈ [0, 1]`` passes once ``s ≥ I(t)``: in each cycle inhibition falls from
its peak (phase 0) to its trough (phase π), so the most salient items pass first, at
phase ``φ(s) = arccos(2s/depth − 1)`` (0 when ``s ≥ depth``), and salience order becomes
temporal order. Every item passes within half a cycle (≤ 62.5 ms at 8 Hz).

``depth`` is the attention knob: allostasis lowers it to let more through early.
No library implements this; it is a handful of closed-form expressions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from emily.cognition.neural.errors import NeuralConfigError, NeuralInputError

ALPHA_BAND_HZ = (8.0, 12.0)


@dataclass(frozen=True)
class AlphaConfig:
    """Settings of :class:`AlphaGate`.

    Attributes
    ----------
    freq_hz : oscillation frequency (Hz), within the alpha band [8, 12].
    depth : peak inhibition in [0, 1]; 0 disables gating (gain 1 at all phases).
    phase_offset_rad : phase φ₀ (rad) at t = 0; 0 puts the inhibition peak at t = 0.
    """

    freq_hz: float = 10.0
    depth: float = 1.0
    phase_offset_rad: float = 0.0

    def __post_init__(self) -> None:
        lo, hi = ALPHA_BAND_HZ
        if not (math.isfinite(self.freq_hz) and lo <= self.freq_hz <= hi):
            raise NeuralConfigError(
                f"alpha frequency must be within {lo}–{hi} Hz, got {self.freq_hz!r}"
            )
        if not (math.isfinite(self.depth) and 0.0 <= self.depth <= 1.0):
            raise NeuralConfigError(f"alpha depth must be in [0, 1], got {self.depth!r}")
        if not math.isfinite(self.phase_offset_rad):
            raise NeuralConfigError("alpha phase_offset_rad must be finite")

    @property
    def period_ms(self) -> float:
        """Length of one cycle (ms)."""
        return 1000.0 / self.freq_hz


def clamp_frequency(freq_hz: float) -> float:
    """Clamp a requested frequency (e.g. from neuromodulation) into the alpha band (Hz)."""
    if not math.isfinite(freq_hz):
        raise NeuralConfigError(f"alpha frequency must be finite, got {freq_hz!r}")
    lo, hi = ALPHA_BAND_HZ
    return min(max(freq_hz, lo), hi)


def _saliences(s: torch.Tensor) -> torch.Tensor:
    if s.dim() != 1:
        raise NeuralInputError(f"saliences must be a 1-D tensor [N], got {tuple(s.shape)}")
    if not bool(((s >= 0) & (s <= 1)).all()):
        raise NeuralInputError("saliences must lie in [0, 1] (no NaN); rescale them first")
    return s.double()


class AlphaGate:
    """Phase-dependent gain and salience-to-time coding of one alpha oscillator."""

    def __init__(self, config: AlphaConfig | None = None) -> None:
        self.config = config or AlphaConfig()

    def set_frequency(self, freq_hz: float) -> float:
        """Retune the oscillator; the value is clamped into the band. Returns the Hz used."""
        used = clamp_frequency(freq_hz)
        self.config = replace(self.config, freq_hz=used)
        return used

    def phase(self, t_ms: torch.Tensor | float) -> torch.Tensor:
        """Phase (rad, in [0, 2π)) at time ``t_ms`` (ms); same shape as ``t_ms``."""
        t = torch.as_tensor(t_ms, dtype=torch.float64)
        c = self.config
        return torch.remainder(
            2 * math.pi * c.freq_hz * t / 1000.0 + c.phase_offset_rad, 2 * math.pi
        )

    def inhibition(self, t_ms: torch.Tensor | float) -> torch.Tensor:
        """Inhibition ``I(t)`` ∈ [0, depth] at ``t_ms`` (ms); same shape as ``t_ms``."""
        return self.config.depth * (1 + torch.cos(self.phase(t_ms))) / 2

    def gain(self, t_ms: torch.Tensor | float) -> torch.Tensor:
        """Gain ``1 − I(t)`` ∈ [0, 1] at ``t_ms`` (ms); same shape as ``t_ms``."""
        return (1 - self.inhibition(t_ms)).clamp(0.0, 1.0)

    def gate(self, x: torch.Tensor, t_ms: float) -> torch.Tensor:
        """Scale inputs ``x`` (any shape) by the gain at ``t_ms``; same shape and dtype."""
        return x * self.gain(t_ms).to(x.dtype)

    def passes(self, saliences: torch.Tensor, t_ms: float) -> torch.Tensor:
        """``[N]`` bool: which items have salience ≥ the inhibition at ``t_ms``."""
        return _saliences(saliences) >= self.inhibition(t_ms)

    def firing_phase(self, saliences: torch.Tensor) -> torch.Tensor:
        """Phase (rad, in [0, π]) after the inhibition peak at which each item passes.

        ``[N] → [N]``; decreasing in salience: ``arccos(2s/depth − 1)``, 0 for s ≥ depth.
        """
        s = _saliences(saliences)
        depth = self.config.depth
        if depth == 0:
            return torch.zeros_like(s)
        return torch.arccos((2 * s / depth - 1).clamp(-1.0, 1.0))

    def firing_times_ms(self, saliences: torch.Tensor) -> torch.Tensor:
        """Delay (ms) after the inhibition peak at which each item passes, ``[N] → [N]``."""
        return self.firing_phase(saliences) / (2 * math.pi) * self.config.period_ms

    def order(self, saliences: torch.Tensor) -> torch.Tensor:
        """``[N]`` long: item indices in firing order (earliest first; ties by salience)."""
        s = _saliences(saliences)
        by_salience = torch.argsort(s, descending=True, stable=True)
        times = self.firing_times_ms(s)[by_salience]
        return by_salience[torch.argsort(times, stable=True)]
