"""Pair-based STDP with exponential traces, for online learning without gradients.

Each pre-synaptic neuron keeps a trace ``x_pre`` and each post-synaptic neuron a trace
``x_post``; every step they decay by ``exp(−dt/τ)`` and a spike adds 1. Then

    on a post spike:  ΔW[j, i] += A+ · x_pre[i]   (pre before post: potentiation)
    on a pre spike:   ΔW[j, i] −= A− · x_post[j]  (post before pre: depression)

using the traces *before* this step's spikes are added, so a pair at Δt = t_post − t_pre
changes the weight by ``A+ · exp(−Δt/τ+)`` (Δt > 0) or ``−A− · exp(Δt/τ−)`` (Δt < 0):
the ±20 ms window decays to e⁻¹ at 20 ms; coincident spikes (Δt = 0) change nothing.
Weights stay within [w_min, w_max].

snntorch has no trace-based STDP rule, so it is written here; it is a few tensor ops
under ``torch.no_grad`` and updates a weight in place, so the reflex tier can adapt
while it serves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from emily.cognition.neural.errors import NeuralConfigError, NeuralInputError


@dataclass(frozen=True)
class STDPConfig:
    """Parameters of the STDP rule.

    Attributes
    ----------
    tau_plus_ms, tau_minus_ms : trace time constants (ms); the window is ±20 ms.
    a_plus, a_minus : learning rates of potentiation and depression (weight units), ≥ 0.
    w_min, w_max : hard weight bounds, ``w_min < w_max``.
    dt_ms : simulation step (ms).
    """

    tau_plus_ms: float = 20.0
    tau_minus_ms: float = 20.0
    a_plus: float = 0.01
    a_minus: float = 0.0105
    w_min: float = 0.0
    w_max: float = 1.0
    dt_ms: float = 1.0

    def __post_init__(self) -> None:
        for name in ("tau_plus_ms", "tau_minus_ms", "dt_ms"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise NeuralConfigError(f"STDPConfig.{name} must be finite and > 0, got {value!r}")
        for name in ("a_plus", "a_minus"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise NeuralConfigError(f"STDPConfig.{name} must be finite and ≥ 0, got {value!r}")
        if not (math.isfinite(self.w_min) and math.isfinite(self.w_max)) or (
            self.w_min >= self.w_max
        ):
            raise NeuralConfigError(
                f"STDPConfig needs finite w_min < w_max, got [{self.w_min}, {self.w_max}]"
            )


def stdp_window(delta_t_ms: torch.Tensor, config: STDPConfig | None = None) -> torch.Tensor:
    """Weight change of one spike pair, as a function of ``Δt = t_post − t_pre`` (ms).

    Returns ``A+ exp(−Δt/τ+)`` for Δt > 0, ``−A− exp(Δt/τ−)`` for Δt < 0, and 0 at
    Δt = 0 (coincident spikes: neither trace has seen the other spike yet). Same shape
    as the input.
    """
    c = config or STDPConfig()
    pot = c.a_plus * torch.exp(-delta_t_ms.clamp(min=0) / c.tau_plus_ms)
    dep = -c.a_minus * torch.exp(delta_t_ms.clamp(max=0) / c.tau_minus_ms)
    zero = torch.zeros_like(delta_t_ms)
    return torch.where(delta_t_ms > 0, pot, zero) + torch.where(delta_t_ms < 0, dep, zero)


class STDP:
    """Online STDP on a weight matrix ``W`` of shape ``[N_post, N_pre]``.

    Parameters
    ----------
    weight : the tensor to adapt in place (e.g. ``layer.weight``); its ``.data`` is updated.
    config : :class:`STDPConfig`.

    Call :meth:`step` once per time step with that step's pre and post spikes.
    """

    def __init__(self, weight: torch.Tensor, config: STDPConfig | None = None) -> None:
        if weight.dim() != 2:
            raise NeuralInputError(
                f"STDP adapts a 2-D weight [N_post, N_pre], got shape {tuple(weight.shape)}"
            )
        self.weight = weight
        self.config = config or STDPConfig()
        self.n_post, self.n_pre = weight.shape
        self.x_pre: torch.Tensor | None = None
        self.x_post: torch.Tensor | None = None
        self._decay_plus = math.exp(-self.config.dt_ms / self.config.tau_plus_ms)
        self._decay_minus = math.exp(-self.config.dt_ms / self.config.tau_minus_ms)

    def reset(self) -> None:
        """Forget the traces (start of a new, unrelated spike train or batch size)."""
        self.x_pre = None
        self.x_post = None

    @torch.no_grad()
    def step(self, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
        """Apply one step of STDP.

        Parameters
        ----------
        pre : ``[N_pre]`` or ``[B, N_pre]`` spikes in {0, 1}.
        post : ``[N_post]`` or ``[B, N_post]`` spikes in {0, 1}; a batch keeps one trace
            per sample and the weight change is averaged over the batch.

        Returns
        -------
        The weight change ``ΔW`` applied this step, ``[N_post, N_pre]`` (after clamping).
        """
        pre_b = self._batch(pre, self.n_pre, "pre")
        post_b = self._batch(post, self.n_post, "post")
        if pre_b.shape[0] != post_b.shape[0]:
            raise NeuralInputError(
                f"pre and post batches differ: {pre_b.shape[0]} vs {post_b.shape[0]}"
            )
        if self.x_pre is None or self.x_post is None:
            self.x_pre, self.x_post = torch.zeros_like(pre_b), torch.zeros_like(post_b)
        elif self.x_pre.shape[0] != pre_b.shape[0]:
            raise NeuralInputError(
                f"batch size changed from {self.x_pre.shape[0]} to {pre_b.shape[0]}; "
                "call reset() between spike trains of different batch sizes"
            )
        c = self.config
        batch = pre_b.shape[0]
        self.x_pre.mul_(self._decay_plus)
        self.x_post.mul_(self._decay_minus)
        delta = (c.a_plus * post_b.T @ self.x_pre - c.a_minus * self.x_post.T @ pre_b) / batch
        before = self.weight.data.clone()
        self.weight.data.add_(delta).clamp_(c.w_min, c.w_max)
        self.x_pre.add_(pre_b)
        self.x_post.add_(post_b)
        return self.weight.data - before

    def run(self, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
        """Apply :meth:`step` over spike trains ``[T, ...]``; returns the total ``ΔW``."""
        if pre.shape[0] != post.shape[0]:
            raise NeuralInputError(
                f"pre and post trains have different lengths: {pre.shape[0]} vs {post.shape[0]}"
            )
        total = torch.zeros_like(self.weight.data)
        for p, q in zip(pre, post, strict=True):
            total += self.step(p, q)
        return total

    def _batch(self, spikes: torch.Tensor, n: int, which: str) -> torch.Tensor:
        s = spikes.to(self.weight.dtype)
        if s.dim() == 1:
            s = s.unsqueeze(0)
        if s.dim() != 2 or s.shape[1] != n:
            raise NeuralInputError(
                f"STDP {which} spikes must be [{n}] or [B, {n}], got {tuple(spikes.shape)}"
            )
        if not bool(((s >= 0) & (s <= 1)).all()):
            raise NeuralInputError(f"STDP {which} spikes must lie in [0, 1]")
        return s
