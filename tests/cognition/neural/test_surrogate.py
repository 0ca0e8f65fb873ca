"""ATan surrogate: snntorch's backward pass against autograd, finite differences and
hand-computed values of α / (2 (1 + (π/2 · α x)²))."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emily.cognition.neural.errors import NeuralConfigError
from emily.cognition.neural.surrogate import atan, atan_grad, atan_primitive


def test_hand_computed_values() -> None:
    x = torch.tensor([0.0, 0.5, -1.0])
    # α = 2: 1 / (1 + (π x)²) → 1, 1/(1 + π²/4), 1/(1 + π²)
    expected = [1.0, 1 / (1 + math.pi**2 / 4), 1 / (1 + math.pi**2)]
    assert atan_grad(x).tolist() == pytest.approx(expected, rel=1e-6)
    assert atan_grad(torch.tensor([0.0]), alpha=4.0).item() == pytest.approx(2.0)
    assert expected[1] == pytest.approx(0.288400, abs=1e-6)


def test_forward_is_the_heaviside_step() -> None:
    x = torch.tensor([-0.5, -1e-6, 0.0, 1e-6, 3.0])
    assert atan()(x).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]


@settings(deadline=None)
@given(
    xs=st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=16),
    alpha=st.floats(0.25, 8.0),
)
def test_library_backward_matches_autograd_of_the_primitive(xs: list[float], alpha: float) -> None:
    x1 = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    atan(alpha)(x1).sum().backward()
    x2 = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    atan_primitive(x2, alpha).sum().backward()
    assert x1.grad is not None and x2.grad is not None
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(x1.grad, atan_grad(x1.detach(), alpha), rtol=1e-9, atol=1e-12)


def test_closed_form_matches_central_finite_differences() -> None:
    x = torch.linspace(-2, 2, 41, dtype=torch.float64)
    h = 1e-6
    numeric = (atan_primitive(x + h) - atan_primitive(x - h)) / (2 * h)
    torch.testing.assert_close(numeric, atan_grad(x), rtol=1e-6, atol=1e-8)


def test_gradcheck_of_the_primitive() -> None:
    x = torch.linspace(-1.5, 1.5, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: atan_primitive(t, 2.0), (x,))


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_alpha_is_rejected(alpha: float) -> None:
    with pytest.raises(NeuralConfigError, match="alpha"):
        atan(alpha)
