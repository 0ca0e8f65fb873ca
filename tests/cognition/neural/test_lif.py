"""LIF neurons: the recurrence against a hand-computed trace, both resets, validation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emily.cognition.neural.errors import NeuralConfigError, NeuralInputError
from emily.cognition.neural.lif import LIF, LIFConfig

BETA = math.exp(-0.1)  # τ_mem = 10 ms, dt = 1 ms


def test_defaults_match_the_issue() -> None:
    c = LIFConfig()
    assert (c.tau_mem_ms, c.dt_ms, c.threshold, c.reset, c.alpha) == (
        10.0,
        1.0,
        1.0,
        "subtract",
        2.0,
    )
    assert c.beta == pytest.approx(0.904837418)


def test_reset_by_subtraction_hand_computed() -> None:
    spikes, mem = LIF()(torch.full((4, 1), 0.6))
    v1 = 0.6
    v2 = BETA * v1 + 0.6  # 1.142902 > 1: spike
    v3 = BETA * v2 + 0.6 - 1.0  # reset subtracts V_th at the next step
    v4 = BETA * v3 + 0.6
    assert mem.flatten().tolist() == pytest.approx([v1, v2, v3, v4], rel=1e-6)
    assert spikes.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]
    assert v2 == pytest.approx(1.142902, abs=1e-6) and v3 == pytest.approx(0.634141, abs=1e-6)


def test_reset_to_zero_hand_computed() -> None:
    spikes, mem = LIF(LIFConfig(reset="zero"))(torch.full((4, 1), 0.6))
    v2 = BETA * 0.6 + 0.6
    assert mem.flatten().tolist() == pytest.approx([0.6, v2, 0.6, v2], rel=1e-6)
    assert spikes.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]


def test_leak_decays_to_e_minus_one_after_tau() -> None:
    current = torch.zeros(11, 1)
    current[0] = 0.5
    _, mem = LIF()(current)
    assert mem[10, 0].item() == pytest.approx(0.5 * math.exp(-1), rel=1e-6)


def test_surrogate_gradient_reaches_the_input() -> None:
    current = torch.full((5, 3), 0.4, requires_grad=True)
    spikes, _ = LIF()(current)
    spikes.sum().backward()
    assert current.grad is not None and bool((current.grad.abs() > 0).all())


@settings(max_examples=30, deadline=None)
@given(level=st.floats(0.0, 0.09), steps=st.integers(1, 60))
def test_subthreshold_current_never_fires(level: float, steps: int) -> None:
    # steady state I / (1 − β) < 1 when I < 1 − β ≈ 0.0952
    spikes, mem = LIF()(torch.full((steps, 2), level))
    assert spikes.sum().item() == 0
    assert bool((mem < 1.0).all())


@settings(max_examples=30, deadline=None)
@given(level=st.floats(0.0, 3.0), steps=st.integers(1, 40))
def test_spikes_are_binary_and_rate_grows_with_current(level: float, steps: int) -> None:
    lif = LIF()
    low, _ = lif(torch.full((steps, 1), level))
    high, _ = lif(torch.full((steps, 1), level + 0.5))
    assert set(low.unique().tolist()) <= {0.0, 1.0}
    assert high.sum() >= low.sum()


@pytest.mark.parametrize(
    "kwargs",
    [{"tau_mem_ms": 0.0}, {"dt_ms": -1.0}, {"threshold": float("nan")}, {"reset": "none"}],
)
def test_bad_config_is_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(NeuralConfigError):
        LIFConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(NeuralInputError, match="membrane"):
        LIF()(torch.zeros(3, 2), torch.zeros(5))
    with pytest.raises(NeuralInputError, match=r"\[T"):
        LIF()(torch.zeros(0, 2))
