"""ATan surrogate gradient of the spike (Heaviside) function.

The forward pass is the step ``S = H(x)`` (``x = V - V_threshold``); the backward pass uses
the derivative of the shifted arctangent (Fang et al., ICCV 2021):

    σ(x)  = 1/π · arctan(π/2 · α x) + 1/2
    σ'(x) = α / (2 (1 + (π/2 · α x)²)),   α = 2 by default.

snntorch (``snntorch.surrogate.atan``) implements exactly this, so :func:`atan` returns
snntorch's function; only the closed forms :func:`atan_primitive` and :func:`atan_grad` are
written here, so tests can check the library's backward pass against autograd of the
primitive and against hand-computed values.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from snntorch import surrogate

from emily.cognition.neural.errors import NeuralConfigError

SpikeFn = Callable[[torch.Tensor], torch.Tensor]
DEFAULT_ALPHA = 2.0


def _check_alpha(alpha: float) -> None:
    if not (math.isfinite(alpha) and alpha > 0):
        raise NeuralConfigError(f"ATan alpha must be a finite number > 0, got {alpha!r}")


def atan(alpha: float = DEFAULT_ALPHA) -> SpikeFn:
    """Spike function with the ATan surrogate gradient (snntorch's implementation).

    Parameters
    ----------
    alpha : slope of the surrogate; larger is closer to the true step (dimensionless, > 0).

    Returns
    -------
    A function mapping ``x`` (any shape, membrane minus threshold) to spikes in {0., 1.}
    of the same shape, whose gradient is :func:`atan_grad`.
    """
    _check_alpha(alpha)
    fn: SpikeFn = surrogate.atan(alpha=alpha)
    return fn


def atan_primitive(x: torch.Tensor, alpha: float = DEFAULT_ALPHA) -> torch.Tensor:
    """Smooth stand-in of the step, ``1/π · arctan(π/2 · α x) + 1/2`` (same shape as ``x``)."""
    _check_alpha(alpha)
    return torch.atan(math.pi / 2 * alpha * x) / math.pi + 0.5


def atan_grad(x: torch.Tensor, alpha: float = DEFAULT_ALPHA) -> torch.Tensor:
    """Closed-form surrogate derivative ``α / (2 (1 + (π/2 · α x)²))`` (same shape as ``x``)."""
    _check_alpha(alpha)
    return alpha / (2 * (1 + (math.pi / 2 * alpha * x) ** 2))
