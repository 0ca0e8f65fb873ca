"""Leaky integrate-and-fire neurons, on snntorch's ``Leaky``.

Discrete-time LIF with step ``dt`` and membrane time constant ``τ_mem``:

    V[t] = β · V[t-1] + I[t] − S[t-1] · V_th        (reset by subtraction)
    V[t] = β · (1 − S[t-1]) · V[t-1] + I[t]         (reset to zero)
    S[t] = H(V[t] − V_th),   β = exp(−dt / τ_mem)

Defaults: τ_mem = 10 ms, dt = 1 ms (β ≈ 0.905), V_th = 1.0, ATan surrogate (α = 2).
snntorch's ``Leaky`` does the recurrence and both resets, so this module only derives β
from the time constants, validates the configuration and unrolls over time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import snntorch
import torch
from torch import nn

from emily.cognition.neural.errors import NeuralConfigError, NeuralInputError
from emily.cognition.neural.surrogate import atan

Reset = Literal["subtract", "zero"]


@dataclass(frozen=True)
class LIFConfig:
    """Parameters of a LIF population.

    Attributes
    ----------
    tau_mem_ms : membrane time constant τ_mem (ms), > 0.
    dt_ms : simulation step (ms), > 0.
    threshold : firing threshold V_th (membrane units), > 0.
    reset : ``"subtract"`` (V −= V_th after a spike) or ``"zero"`` (V = 0).
    alpha : slope of the ATan surrogate gradient, > 0.
    """

    tau_mem_ms: float = 10.0
    dt_ms: float = 1.0
    threshold: float = 1.0
    reset: Reset = "subtract"
    alpha: float = 2.0

    def __post_init__(self) -> None:
        for name in ("tau_mem_ms", "dt_ms", "threshold", "alpha"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise NeuralConfigError(f"LIFConfig.{name} must be finite and > 0, got {value!r}")
        if self.reset not in ("subtract", "zero"):
            raise NeuralConfigError(
                f"LIFConfig.reset must be 'subtract' or 'zero', got {self.reset!r}"
            )

    @property
    def beta(self) -> float:
        """Membrane decay per step, ``exp(−dt / τ_mem)`` (dimensionless, in (0, 1))."""
        return math.exp(-self.dt_ms / self.tau_mem_ms)


class LIF(nn.Module):
    """A population of LIF neurons unrolled over time.

    Parameters
    ----------
    config : :class:`LIFConfig`; defaults give τ_mem = 10 ms at dt = 1 ms.

    Each call starts from ``mem`` (zeros by default), so calls are independent, but
    snntorch keeps the running state on the module: do not call one instance from
    several threads at once (give each worker its own copy, or hold a lock).
    """

    def __init__(self, config: LIFConfig | None = None) -> None:
        super().__init__()
        self.config = config or LIFConfig()
        self.neuron = snntorch.Leaky(
            beta=self.config.beta,
            threshold=self.config.threshold,
            spike_grad=atan(self.config.alpha),
            reset_mechanism=self.config.reset,
        )

    def forward(
        self, current: torch.Tensor, mem: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the neurons over ``T`` steps of input current.

        Parameters
        ----------
        current : input current, shape ``[T, *batch]`` (membrane units per step).
        mem : initial membrane potential, shape ``batch``; zeros when ``None``.

        Returns
        -------
        spikes : ``[T, *batch]``, values in {0., 1.}, differentiable via the surrogate.
        mem : ``[T, *batch]``, membrane potential after each step (before its reset,
            which snntorch applies at the next step).
        """
        if current.dim() < 1 or current.shape[0] < 1:
            raise NeuralInputError(
                f"LIF expects current of shape [T, ...] with T ≥ 1, got {tuple(current.shape)}"
            )
        state = torch.zeros_like(current[0]) if mem is None else mem
        if state.shape != current.shape[1:]:
            raise NeuralInputError(
                f"initial membrane shape {tuple(state.shape)} does not match the per-step "
                f"input shape {tuple(current.shape[1:])}"
            )
        spikes, mems = [], []
        for step in current:
            spk, state = self.neuron(step, state)
            spikes.append(spk)
            mems.append(state)
        return torch.stack(spikes), torch.stack(mems)
