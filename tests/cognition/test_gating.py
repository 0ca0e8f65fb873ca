"""Alpha gating of workspace candidates."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emily.cognition.gating import alpha_gate
from emily.cognition.neural.alpha import AlphaConfig, AlphaGate
from emily.cognition.workspace import Candidate


def cands(*scores: float) -> list[Candidate]:
    return [Candidate(f"k{i}", "memory", "", s) for i, s in enumerate(scores)]


def test_entry_order_follows_salience() -> None:
    g = alpha_gate(cands(0.2, 1.0, 0.6))
    assert g.order == [1, 2, 0]
    assert g.times_ms[1] < g.times_ms[2] < g.times_ms[0]


def test_late_items_are_attenuated_and_early_ones_are_not() -> None:
    g = alpha_gate(cands(1.0, 0.9, 0.05))
    assert g.factors[0] == 1.0 and g.factors[1] == 1.0
    assert g.factors[2] == pytest.approx(0.5)  # gain a quarter cycle after the peak


def test_higher_alpha_gain_lets_more_through_early() -> None:
    low = alpha_gate(cands(1.0, 0.3), alpha_gain=1.0)
    high = alpha_gate(cands(1.0, 0.3), alpha_gain=1.7)
    assert high.times_ms[1] < low.times_ms[1]


def test_empty_and_all_zero() -> None:
    assert alpha_gate([]).order == []
    g = alpha_gate(cands(0.0, 0.0))
    assert sorted(g.order) == [0, 1]


@settings(max_examples=200, deadline=None)
@given(
    scores=st.lists(
        st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 10.0, allow_nan=False)),
        min_size=1,
        max_size=12,
    ),
    gain=st.floats(0.5, 1.7),
)
def test_matches_the_torch_alpha_gate(scores: list[float], gain: float) -> None:
    """The float closed forms agree with :class:`AlphaGate` (the reference, in torch)."""
    g = alpha_gate(cands(*scores), alpha_gain=gain)
    s = torch.tensor(scores, dtype=torch.float64)
    s = s / s.max() if float(s.max()) > 0 else torch.zeros_like(s)
    gate = AlphaGate(AlphaConfig(depth=min(1.0, 1.0 / gain)))
    readout = gate.config.period_ms / 4
    late = float(gate.gain(readout))
    assert g.order == [int(i) for i in gate.order(s)]
    assert g.times_ms == pytest.approx([float(t) for t in gate.firing_times_ms(s)], abs=1e-9)
    expected = [1.0 if bool(p) else late for p in gate.passes(s, readout)]
    assert g.factors == pytest.approx(expected, abs=1e-12)
