"""Encoders from real-valued inputs to spike trains.

- :func:`rate_encode`: a feature ``x ∈ [0, 1]`` spikes about ``x · T`` times in ``T`` steps.
  ``"bernoulli"``: each step with probability ``x`` (written by hand because
  ``snntorch.spikegen.rate`` takes no ``torch.Generator``, and a seeded generator makes
  runs and tests reproducible). ``"regular"``: an integrate-and-fire encoder driven by
  the constant current ``x`` (threshold 1, reset by subtraction), which emits exactly
  ``floor(x · T)`` evenly spaced spikes, without sampling noise; snntorch has no such
  encoder.
- :func:`latency_encode`: one spike per feature, at step ``round((1 − x)(T − 1))``, so a
  larger value spikes earlier; values below ``threshold`` never spike. This is
  snntorch's linear, normalised, clipped ``spikegen.latency``.
- :func:`on_off`: splits signed features (z-scored embeddings) into an "on" and an
  "off" channel in [0, 1], as retinal ON/OFF cells do, so either encoder can take them.

Each encoder also says how many operations it costs (:func:`encoder_macs`), because the
energy model counts the encoding layer.
"""

from __future__ import annotations

from typing import Literal

import torch
from snntorch import spikegen

from emily.cognition.neural.errors import NeuralConfigError, NeuralInputError

Encoding = Literal["rate", "latency", "regular"]
RateMode = Literal["bernoulli", "regular"]


def _check(x: torch.Tensor, steps: int) -> None:
    if steps < 1:
        raise NeuralConfigError(f"the number of time steps must be ≥ 1, got {steps}")
    if not torch.is_floating_point(x):
        raise NeuralInputError(f"encoders take a float tensor, got dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise NeuralInputError("encoder input contains NaN or inf; clean or impute it first")


def rate_encode(
    x: torch.Tensor,
    steps: int,
    *,
    mode: RateMode = "bernoulli",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Rate code: spike count proportional to the value.

    Parameters
    ----------
    x : features, shape ``[*batch, F]``; values are clipped to [0, 1] (spikes per step).
    steps : number of time steps ``T`` (one step = dt, e.g. 1 ms).
    mode : ``"bernoulli"`` (stochastic, expected count ``T·x``) or ``"regular"``
        (deterministic integrate-and-fire, exactly ``floor(T·x)`` spikes).
    generator : seeded ``torch.Generator`` for reproducible Bernoulli trains.

    Returns
    -------
    Spikes of shape ``[T, *batch, F]`` in {0., 1.}.
    """
    _check(x, steps)
    p = x.clamp(0.0, 1.0)
    if mode == "bernoulli":
        return torch.bernoulli(p.unsqueeze(0).expand(steps, *x.shape), generator=generator)
    if mode != "regular":
        raise NeuralConfigError(f"rate mode must be 'bernoulli' or 'regular', got {mode!r}")
    # v_t = t·x after t steps without reset; a spike whenever floor(v) steps up.
    # Computed in closed form (float64) so rounding cannot add or lose a spike.
    t = torch.arange(steps + 1, dtype=torch.float64).view(-1, *([1] * x.dim()))
    level = torch.floor(t * p.double().unsqueeze(0) + 1e-9)
    return (level[1:] - level[:-1]).to(x.dtype)


def latency_encode(x: torch.Tensor, steps: int, *, threshold: float = 0.01) -> torch.Tensor:
    """Linear time-to-first-spike code: at most one spike per feature.

    Parameters
    ----------
    x : features, shape ``[*batch, F]``; values are clipped to [0, 1].
    steps : number of time steps ``T``; ``x = 1`` spikes at step 0, ``x → 0`` at step ``T − 1``.
    threshold : features below it stay silent (they would carry no information).

    Returns
    -------
    Spikes of shape ``[T, *batch, F]`` in {0., 1.}.
    """
    _check(x, steps)
    if steps == 1:
        return (x >= threshold).to(x.dtype).unsqueeze(0)
    spikes: torch.Tensor = spikegen.latency(
        x.clamp(0.0, 1.0),
        num_steps=steps,
        threshold=threshold,
        linear=True,
        normalize=True,
        clip=True,
    )
    return spikes


def on_off(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Split signed features into ON and OFF channels in [0, 1].

    Parameters
    ----------
    x : features, shape ``[*batch, F]`` (e.g. z-scored embeddings).
    scale : value mapped to 1.0 (larger magnitudes saturate), > 0.

    Returns
    -------
    ``[*batch, 2F]``: ``clip(x/scale, 0, 1)`` then ``clip(−x/scale, 0, 1)``.
    """
    if not scale > 0:
        raise NeuralConfigError(f"on_off scale must be > 0, got {scale!r}")
    y = x / scale
    return torch.cat([y.clamp(0.0, 1.0), (-y).clamp(0.0, 1.0)], dim=-1)


def encode(
    x: torch.Tensor,
    steps: int,
    encoding: Encoding,
    *,
    threshold: float = 0.01,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Dispatch by name; shape ``[T, *batch, F]``.

    ``"rate"`` is the Bernoulli rate code, ``"regular"`` the deterministic rate code,
    ``"latency"`` the time-to-first-spike code.
    """
    if encoding == "rate":
        return rate_encode(x, steps, generator=generator)
    if encoding == "regular":
        return rate_encode(x, steps, mode="regular")
    if encoding == "latency":
        return latency_encode(x, steps, threshold=threshold)
    raise NeuralConfigError(f"encoding must be 'rate', 'regular' or 'latency', got {encoding!r}")


def encoder_macs(features: int, steps: int, encoding: Encoding) -> int:
    """Operations the encoder spends per sample, counted as MACs (conservative).

    Latency: one multiply-add per feature (``(1 − x)(T − 1)``). Rate: one draw-and-compare
    (Bernoulli) or one add-and-compare (regular) per feature per step.
    """
    if encoding == "latency":
        return features
    if encoding in ("rate", "regular"):
        return features * steps
    raise NeuralConfigError(f"encoding must be 'rate', 'regular' or 'latency', got {encoding!r}")
