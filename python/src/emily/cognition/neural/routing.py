"""Switch / V-MoE routing maths as plain functions, so others can check our numbers.

Shapes: ``T`` tokens, ``E`` experts, ``k`` choices per token (1 = Switch, 2 = top-2).

- :func:`load_balancing_loss`: ``N · Σ_i f_i · P_i`` (Switch Transformer, Fedus et al.
  2021), without the coefficient α. ``f_i`` is the fraction of tokens that chose expert
  ``i`` among their ``k`` choices, ``P_i`` the mean router probability of ``i``. It is 1.0
  for a perfectly uniform router and grows to ``N`` when every token picks one expert.
- :func:`router_z_loss`: ``mean_t (logsumexp_i logits[t, i])²`` (ST-MoE, Zoph et al. 2022).
- :func:`expert_capacity`: ``ceil(assignments / E · capacity_factor)`` where
  ``assignments = k · T`` (for top-1, the Switch formula ``ceil(T / E · CF)``).
- :func:`dispatch`: top-k choice, capacity, and batch priority routing (V-MoE, Riquelme
  et al. 2021): tokens claim expert slots in order of router confidence (their top
  probability), all first choices before any second choice; tokens over capacity are
  dropped and pass through the residual.

No maintained PyTorch library ships these as small functions (fairseq and DeepSpeed
embed them in distributed layers), so they are written here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from emily.cognition.neural.errors import NeuralConfigError, NeuralInputError


def _check_2d(name: str, t: torch.Tensor) -> None:
    if t.dim() != 2 or t.shape[0] < 1 or t.shape[1] < 1:
        raise NeuralInputError(f"{name} must be [tokens, experts], got {tuple(t.shape)}")


def load_balancing_loss(router_probs: torch.Tensor, expert_index: torch.Tensor) -> torch.Tensor:
    """Switch auxiliary load-balancing loss ``N · Σ_i f_i P_i`` (without α).

    Parameters
    ----------
    router_probs : ``[T, E]`` softmax of the router logits (rows sum to 1).
    expert_index : ``[T]`` or ``[T, k]`` chosen experts (long), before capacity.

    Returns
    -------
    Scalar tensor, differentiable through ``router_probs`` (``f`` is a count).
    """
    _check_2d("router_probs", router_probs)
    n_tokens, n_experts = router_probs.shape
    idx = expert_index if expert_index.dim() == 2 else expert_index.unsqueeze(1)
    if idx.shape[0] != n_tokens:
        raise NeuralInputError(
            f"expert_index has {idx.shape[0]} tokens, router_probs has {n_tokens}"
        )
    chosen = torch.zeros_like(router_probs).scatter_(1, idx, 1.0)
    f = chosen.mean(dim=0)
    p = router_probs.mean(dim=0)
    return n_experts * torch.sum(f * p)


def router_z_loss(router_logits: torch.Tensor) -> torch.Tensor:
    """Router z-loss ``mean_t logsumexp(logits[t])²`` (without its coefficient).

    Parameters
    ----------
    router_logits : ``[T, E]`` raw router outputs (fp32).

    Returns
    -------
    Scalar tensor; it pushes logits towards small magnitudes for numerical stability.
    """
    _check_2d("router_logits", router_logits)
    return torch.mean(torch.logsumexp(router_logits.float(), dim=-1) ** 2)


def expert_capacity(tokens: int, experts: int, capacity_factor: float = 1.25, k: int = 1) -> int:
    """Slots per expert, ``ceil(k · tokens / experts · capacity_factor)``."""
    if tokens < 0 or experts < 1 or k < 1 or not capacity_factor > 0:
        raise NeuralConfigError(
            f"capacity needs tokens ≥ 0, experts ≥ 1, k ≥ 1 and capacity_factor > 0; got "
            f"tokens={tokens}, experts={experts}, k={k}, capacity_factor={capacity_factor}"
        )
    return math.ceil(k * tokens / experts * capacity_factor)


@dataclass(frozen=True)
class Dispatch:
    """Routing decision of a batch.

    Attributes
    ----------
    expert_index : ``[T, k]`` long, the expert of each choice (best first).
    combine_weights : ``[T, k]`` float, gate of each choice; 0 where dropped. For k = 1
        the router probability (Switch); for k > 1 the top-k probabilities renormalised.
    dropped : ``[T, k]`` bool, the choice found its expert full.
    capacity : slots per expert used for this batch.
    """

    expert_index: torch.Tensor
    combine_weights: torch.Tensor
    dropped: torch.Tensor
    capacity: int

    @property
    def drop_rate(self) -> float:
        """Fraction of the ``T · k`` assignments that were dropped, in [0, 1]."""
        return float(self.dropped.float().mean().item()) if self.dropped.numel() else 0.0

    def load(self, n_experts: int) -> torch.Tensor:
        """``[E]`` assignments each expert was asked for, before capacity."""
        return torch.bincount(self.expert_index.flatten(), minlength=n_experts)

    def kept(self, n_experts: int) -> torch.Tensor:
        """``[E]`` assignments each expert actually served (never above capacity)."""
        return torch.bincount(self.expert_index[~self.dropped], minlength=n_experts)


def dispatch(
    router_probs: torch.Tensor,
    k: int = 1,
    capacity_factor: float = 1.25,
    *,
    batch_priority: bool = True,
) -> Dispatch:
    """Choose experts under a capacity limit.

    Parameters
    ----------
    router_probs : ``[T, E]`` router softmax.
    k : choices per token (1 = Switch, 2 = top-2), ``1 ≤ k ≤ E``.
    capacity_factor : slack over an even split; capacity is :func:`expert_capacity`.
    batch_priority : serve tokens in order of confidence (V-MoE BPR) instead of position.

    Returns
    -------
    :class:`Dispatch` with ``[T, k]`` index, weights and dropped mask.
    """
    _check_2d("router_probs", router_probs)
    n_tokens, n_experts = router_probs.shape
    if not 1 <= k <= n_experts:
        raise NeuralConfigError(f"k must be between 1 and the {n_experts} experts, got {k}")
    capacity = expert_capacity(n_tokens, n_experts, capacity_factor, k)
    top_p, top_i = torch.topk(router_probs, k, dim=-1)
    weights = top_p if k == 1 else top_p / top_p.sum(dim=-1, keepdim=True).clamp_min(1e-9)
    if batch_priority:
        order = torch.argsort(top_p[:, 0].detach(), descending=True, stable=True)
    else:
        order = torch.arange(n_tokens, device=router_probs.device)
    dropped = torch.zeros(n_tokens, k, dtype=torch.bool, device=router_probs.device)
    filled = torch.zeros(n_experts, dtype=torch.long, device=router_probs.device)
    for choice in range(k):
        onehot = torch.nn.functional.one_hot(top_i[order, choice], n_experts)
        position = (torch.cumsum(onehot, dim=0) - 1 + filled) * onehot
        over = (position.sum(dim=1) >= capacity).to(torch.bool)
        dropped[order, choice] = over
        filled += (onehot * (~over).unsqueeze(1)).sum(dim=0)
    combine = torch.where(dropped, torch.zeros_like(weights), weights)
    return Dispatch(expert_index=top_i, combine_weights=combine, dropped=dropped, capacity=capacity)
