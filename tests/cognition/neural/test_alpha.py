"""Alpha gating: hand-computed gains and phases, and hypothesis properties (gain bounds,
frequency bounds, salience order preserved in firing order)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emily.cognition.neural.alpha import AlphaConfig, AlphaGate, clamp_frequency
from emily.cognition.neural.errors import NeuralConfigError, NeuralInputError

saliences = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=20)


def test_hand_computed_gain_at_10_hz() -> None:
    gate = AlphaGate(AlphaConfig(freq_hz=10.0, depth=1.0))
    # period 100 ms: inhibition peak at 0 ms, half at 25 ms, trough at 50 ms
    assert gate.gain(torch.tensor([0.0, 25.0, 50.0, 75.0, 100.0])).tolist() == pytest.approx(
        [0.0, 0.5, 1.0, 0.5, 0.0], abs=1e-12
    )
    half = AlphaGate(AlphaConfig(freq_hz=8.0, depth=0.5))
    assert half.gain(0.0).item() == pytest.approx(0.5)
    assert half.config.period_ms == 125.0


def test_hand_computed_firing_times() -> None:
    gate = AlphaGate(AlphaConfig(freq_hz=10.0))
    # s = 0.5 passes when cos φ = 0, φ = π/2 → 25 ms; s = 1 at 0 ms; s = 0 at 50 ms
    times = gate.firing_times_ms(torch.tensor([0.5, 1.0, 0.0, 0.75]))
    expected_075 = math.acos(0.5) / (2 * math.pi) * 100  # 16.67 ms
    assert times.tolist() == pytest.approx([25.0, 0.0, 50.0, expected_075])
    assert gate.order(torch.tensor([0.5, 1.0, 0.0, 0.75])).tolist() == [1, 3, 0, 2]


@settings(deadline=None)
@given(
    freq=st.floats(8.0, 12.0),
    depth=st.floats(0.0, 1.0),
    phase0=st.floats(-10.0, 10.0),
    t=st.lists(st.floats(-1e5, 1e5, allow_nan=False), min_size=1, max_size=16),
)
def test_gain_is_bounded_in_unit_interval(
    freq: float, depth: float, phase0: float, t: list[float]
) -> None:
    gate = AlphaGate(AlphaConfig(freq, depth, phase0))
    g = gate.gain(torch.tensor(t, dtype=torch.float64))
    assert bool(((g >= 1 - depth - 1e-12) & (g <= 1.0)).all())
    assert bool(((g >= 0) & (g <= 1)).all())
    x = torch.ones(3)
    assert bool((gate.gate(x, t[0]) <= 1).all())


@settings(deadline=None)
@given(freq=st.floats(-1e6, 1e6, allow_nan=False))
def test_frequency_is_bounded_to_the_band(freq: float) -> None:
    if 8.0 <= freq <= 12.0:
        assert AlphaConfig(freq_hz=freq).freq_hz == freq
    else:
        with pytest.raises(NeuralConfigError, match=r"8\.0–12\.0 Hz"):
            AlphaConfig(freq_hz=freq)
    used = AlphaGate().set_frequency(freq)
    assert 8.0 <= used <= 12.0 and used == clamp_frequency(freq)


@settings(deadline=None)
@given(s=saliences, depth=st.floats(0.05, 1.0), freq=st.floats(8.0, 12.0))
def test_salience_order_is_preserved_in_firing_order(
    s: list[float], depth: float, freq: float
) -> None:
    gate = AlphaGate(AlphaConfig(freq, depth))
    sal = torch.tensor(s, dtype=torch.float64)
    times = gate.firing_times_ms(sal)
    for i in range(len(s)):
        for j in range(len(s)):
            if s[i] > s[j]:
                assert times[i] <= times[j]
                if s[i] < depth and s[i] - s[j] > 1e-6:  # strictly earlier below saturation
                    assert times[i] < times[j]
    fired = [s[i] for i in gate.order(sal).tolist()]
    assert fired == sorted(s, reverse=True)
    assert bool((times <= gate.config.period_ms / 2 + 1e-9).all())


@settings(deadline=None)
@given(s=saliences, t=st.floats(0.0, 50.0))
def test_an_item_passes_once_inhibition_falls_below_its_salience(s: list[float], t: float) -> None:
    gate = AlphaGate(AlphaConfig(10.0))
    sal = torch.tensor(s, dtype=torch.float64)
    passing = gate.passes(sal, t)
    times = gate.firing_times_ms(sal)
    for i in range(len(s)):
        if times[i] < t - 1e-6:
            assert passing[i]
        if times[i] > t + 1e-6:
            assert not passing[i]


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(NeuralConfigError, match="depth"):
        AlphaConfig(depth=1.5)
    with pytest.raises(NeuralInputError, match=r"\[0, 1\]"):
        AlphaGate().firing_phase(torch.tensor([0.5, 1.5]))
    with pytest.raises(NeuralInputError, match="1-D"):
        AlphaGate().order(torch.zeros(2, 2))
    with pytest.raises(NeuralConfigError, match="finite"):
        clamp_frequency(float("nan"))
