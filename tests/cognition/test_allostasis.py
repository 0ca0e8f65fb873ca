"""Allostasis: bounded variables that return to their set points."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emily.cognition.allostasis import VARIABLES, Allostasis


class Clock:
    """A clock the test advances by hand (seconds)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


events = st.lists(
    st.tuples(
        st.sampled_from(["novelty", "failure", "latency", "reward"]),
        st.floats(-1.0, 1.0),
        st.floats(0.0, 100.0),
    ),
    max_size=60,
)


@settings(max_examples=80, deadline=None)
@given(events)
def test_values_stay_in_bounds(seq: list[tuple[str, float, float]]) -> None:
    clock = Clock()
    a = Allostasis(clock=clock)
    for kind, magnitude, dt in seq:
        clock.t += dt
        state = a.event(kind, magnitude)
        assert all(0.0 <= state[v] <= 1.0 for v in VARIABLES)
        m = a.modulation()
        assert 4.0 <= m.gamma <= 64.0
        assert 0.5 <= m.alpha_gain <= 1.7
        assert -0.05 <= m.reflex_shift <= 0.15
        assert 0.25 <= m.temperature <= 2.0


@settings(max_examples=40, deadline=None)
@given(events.filter(bool))
def test_every_variable_returns_towards_its_set_point(seq: list[tuple[str, float, float]]) -> None:
    clock = Clock()
    a = Allostasis(clock=clock)
    for kind, magnitude, _ in seq:
        a.event(kind, magnitude)
    perturbed = a.snapshot()
    clock.t += a.config.tau_s  # one time constant: the distance shrinks by e
    relaxed = a.snapshot()
    for v in VARIABLES:
        before = abs(perturbed[v] - a.set_point(v))
        after = abs(relaxed[v] - a.set_point(v))
        assert after == pytest.approx(before / 2.718281828459045, abs=1e-9)
    clock.t += 20 * a.config.tau_s
    for v, value in a.snapshot().items():
        assert value == pytest.approx(a.set_point(v), abs=1e-6)


def test_set_points_give_the_default_modulation() -> None:
    m = Allostasis(clock=Clock()).modulation()
    assert m.gamma == pytest.approx(16.0)
    assert (m.alpha_gain, m.reflex_shift, m.temperature) == pytest.approx((1.0, 0.0, 1.0))


def test_failures_lower_precision_and_raise_exploration() -> None:
    a = Allostasis(clock=Clock())
    for _ in range(3):
        a.event("failure")
    m = a.modulation()
    assert m.gamma < 16.0 and m.temperature > 1.0 and m.alpha_gain > 1.0


def test_latency_spikes_lower_the_reflex_threshold() -> None:
    a = Allostasis(clock=Clock())
    a.event("latency", 1.0)
    assert a.modulation().reflex_shift < 0


def test_unknown_events_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown allostatic event"):
        Allostasis().event("joy")
