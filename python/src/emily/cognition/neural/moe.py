"""A Switch-style mixture-of-experts layer with a residual path for dropped tokens.

``y = x + Σ_j g_j · FFN_{e_j}(x)`` over a token's kept choices ``j`` (gate ``g_j``,
expert ``e_j``, see :func:`~emily.cognition.neural.routing.dispatch`); a dropped token
gets ``y = x``. The router is a bias-free linear layer computed in fp32 whatever the
model's dtype, with optional multiplicative jitter ``x · U(1 − ε, 1 + ε)`` while
training (Switch). Both auxiliary losses are on by default:

    aux = α · N · Σ f_i P_i      (α = 0.01)
    z   = c_z · mean(logsumexp(logits)²)   (c_z = 1e-3)

Add :attr:`MoEOutput.loss` to the task loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from emily.cognition.neural.errors import NeuralConfigError, NeuralInputError
from emily.cognition.neural.routing import (
    Dispatch,
    dispatch,
    load_balancing_loss,
    router_z_loss,
)


@dataclass(frozen=True)
class MoEConfig:
    """Settings of :class:`MoE`.

    Attributes
    ----------
    d_model : token width.
    d_hidden : hidden width of each expert FFN.
    n_experts : number of experts ``E``.
    k : choices per token (1 = Switch top-1, 2 = top-2).
    capacity_factor : slack over an even split (1.25 by default).
    jitter_eps : multiplicative router-input noise while training; 0 turns it off.
    batch_priority : V-MoE batch priority routing (on by default).
    aux_loss_coef : α of the load-balancing loss (0.01).
    z_loss_coef : coefficient of the router z-loss (1e-3).
    router_init_scale : router weights start ~ N(0, scale / d_model); Switch's 0.1 keeps
        early routing near uniform (1.0 is PyTorch-like fan-in scaling).
    expert_dropout : dropout on each expert's hidden layer while training (Switch uses
        it when fine-tuning on small data); 0 turns it off.
    """

    d_model: int
    d_hidden: int
    n_experts: int = 4
    k: int = 1
    capacity_factor: float = 1.25
    jitter_eps: float = 0.0
    batch_priority: bool = True
    aux_loss_coef: float = 0.01
    z_loss_coef: float = 1e-3
    router_init_scale: float = 0.1
    expert_dropout: float = 0.0

    def __post_init__(self) -> None:
        if min(self.d_model, self.d_hidden, self.n_experts) < 1:
            raise NeuralConfigError("MoEConfig needs d_model, d_hidden and n_experts ≥ 1")
        if not 1 <= self.k <= self.n_experts:
            raise NeuralConfigError(f"MoEConfig.k must be in [1, n_experts], got {self.k}")
        if not (math.isfinite(self.capacity_factor) and self.capacity_factor > 0):
            raise NeuralConfigError(
                f"MoEConfig.capacity_factor must be > 0, got {self.capacity_factor}"
            )
        if not 0 <= self.jitter_eps < 1:
            raise NeuralConfigError(
                f"MoEConfig.jitter_eps must be in [0, 1), got {self.jitter_eps}"
            )
        if not self.router_init_scale >= 0:
            raise NeuralConfigError(
                f"MoEConfig.router_init_scale must be ≥ 0, got {self.router_init_scale}"
            )
        if not 0 <= self.expert_dropout < 1:
            raise NeuralConfigError(
                f"MoEConfig.expert_dropout must be in [0, 1), got {self.expert_dropout}"
            )
        if self.aux_loss_coef < 0 or self.z_loss_coef < 0:
            raise NeuralConfigError("MoEConfig loss coefficients must be ≥ 0")


@dataclass(frozen=True)
class MoEOutput:
    """Result of :meth:`MoE.forward`.

    Attributes
    ----------
    y : ``[T, d_model]`` output (residual included).
    loss : ``aux_loss + z_loss`` (scalar, weighted), to add to the task loss.
    aux_loss : raw ``N · Σ f_i P_i`` (1.0 when balanced).
    z_loss : raw ``mean(logsumexp²)``.
    routing : the :class:`Dispatch` (index, weights, dropped mask).
    load : ``[E]`` assignments requested per expert, before capacity.
    """

    y: torch.Tensor
    loss: torch.Tensor
    aux_loss: torch.Tensor
    z_loss: torch.Tensor
    routing: Dispatch
    load: torch.Tensor

    @property
    def drop_rate(self) -> float:
        """Fraction of assignments dropped (passed through the residual), in [0, 1]."""
        return self.routing.drop_rate

    @property
    def load_cv(self) -> float:
        """Coefficient of variation (std / mean) of :attr:`load`; 0 when perfectly even."""
        load = self.load.float()
        return float((load.std(unbiased=False) / load.mean().clamp_min(1e-9)).item())


class Router(nn.Module):
    """Bias-free linear router, always evaluated in fp32.

    Parameters
    ----------
    d_model : token width.
    n_experts : experts ``E``.
    jitter_eps : multiplicative input noise while training (0 = off).
    init_scale : weights start ~ N(0, init_scale / d_model) (Switch: 0.1).
    """

    def __init__(
        self,
        d_model: int,
        n_experts: int,
        jitter_eps: float = 0.0,
        init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_experts, d_model, dtype=torch.float32))
        nn.init.normal_(self.weight, std=math.sqrt(init_scale / d_model))
        self.jitter_eps = jitter_eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Router logits ``[T, E]`` (fp32) of tokens ``x`` ``[T, d_model]``."""
        h = x.float()
        if self.training and self.jitter_eps > 0:
            noise = torch.empty_like(h).uniform_(1 - self.jitter_eps, 1 + self.jitter_eps)
            h = h * noise
        return nn.functional.linear(h, self.weight.float())


class Expert(nn.Module):
    """A feed-forward expert ``d_model → d_hidden (GELU, dropout) → d_model``."""

    def __init__(self, d_model: int, d_hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_model, d_hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(d_hidden, d_model),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[n, d_model] → [n, d_model]``."""
        out: torch.Tensor = self.net(x)
        return out


class MoE(nn.Module):
    """Mixture of experts with top-k routing, capacity, batch priority and aux losses."""

    def __init__(self, config: MoEConfig) -> None:
        super().__init__()
        self.config = config
        self.router = Router(
            config.d_model,
            config.n_experts,
            config.jitter_eps,
            config.router_init_scale,
        )
        self.experts = nn.ModuleList(
            Expert(config.d_model, config.d_hidden, config.expert_dropout)
            for _ in range(config.n_experts)
        )

    def forward(self, x: torch.Tensor) -> MoEOutput:
        """Route tokens ``x`` ``[T, d_model]`` through their experts.

        Returns
        -------
        :class:`MoEOutput`; ``y`` has the shape and dtype of ``x``.
        """
        c = self.config
        if x.dim() != 2 or x.shape[1] != c.d_model or x.shape[0] < 1:
            raise NeuralInputError(f"MoE expects tokens [T, {c.d_model}], got {tuple(x.shape)}")
        logits = self.router(x)
        probs = torch.softmax(logits, dim=-1)
        routing = dispatch(probs, c.k, c.capacity_factor, batch_priority=c.batch_priority)
        aux = load_balancing_loss(probs, routing.expert_index)
        z = router_z_loss(logits)
        y = x.clone()
        for e, expert in enumerate(self.experts):
            sel = (routing.expert_index == e) & ~routing.dropped
            token, choice = sel.nonzero(as_tuple=True)
            if token.numel() == 0:
                continue
            gate = routing.combine_weights[token, choice].unsqueeze(1).to(x.dtype)
            y = y.index_add(0, token, gate * expert(x[token]))
        return MoEOutput(
            y=y,
            loss=c.aux_loss_coef * aux + c.z_loss_coef * z,
            aux_loss=aux,
            z_loss=z,
            routing=routing,
            load=routing.load(c.n_experts),
        )
