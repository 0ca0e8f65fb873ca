"""Alpha gating of workspace candidates."""

from __future__ import annotations

import pytest

from emily.cognition.gating import alpha_gate
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
