"""STDP: potentiation when pre leads, depression when post leads, e⁻¹ at 20 ms, bounds."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emily.cognition.neural.errors import NeuralConfigError, NeuralInputError
from emily.cognition.neural.stdp import STDP, STDPConfig, stdp_window

CFG = STDPConfig(a_plus=0.01, a_minus=0.012, w_min=0.0, w_max=1.0)


def pair_change(delta_t: int, config: STDPConfig = CFG, w0: float = 0.5) -> float:
    """Run one pre and one post spike ``delta_t`` ms apart (t_post − t_pre) through STDP."""
    steps = abs(delta_t) + 5
    pre = torch.zeros(steps, 1, dtype=torch.float64)
    post = torch.zeros(steps, 1, dtype=torch.float64)
    t_pre = 2 if delta_t >= 0 else 2 - delta_t
    pre[t_pre, 0] = 1
    post[t_pre + delta_t, 0] = 1
    w = torch.full((1, 1), w0, dtype=torch.float64)
    return float(STDP(w, config).run(pre, post).item())


def test_defaults_match_the_issue() -> None:
    c = STDPConfig()
    assert (c.tau_plus_ms, c.tau_minus_ms) == (20.0, 20.0)


@settings(deadline=None, max_examples=40)
@given(delta_t=st.integers(1, 80))
def test_pre_before_post_potentiates(delta_t: int) -> None:
    change = pair_change(delta_t)
    assert change > 0
    assert change == pytest.approx(0.01 * math.exp(-delta_t / 20), rel=1e-5)


@settings(deadline=None, max_examples=40)
@given(delta_t=st.integers(1, 80))
def test_post_before_pre_depresses(delta_t: int) -> None:
    change = pair_change(-delta_t)
    assert change < 0
    assert change == pytest.approx(-0.012 * math.exp(-delta_t / 20), rel=1e-5)


def test_effect_decays_to_e_minus_one_at_20_ms() -> None:
    # hand: the trace of a spike 20 steps ago is exp(−20/20) = 0.367879
    assert pair_change(20) / 0.01 == pytest.approx(math.exp(-1), rel=1e-6)
    assert pair_change(-20) / -0.012 == pytest.approx(math.exp(-1), rel=1e-6)
    assert math.exp(-1) == pytest.approx(0.367879, abs=1e-6)


@settings(deadline=None, max_examples=30)
@given(delta_t=st.integers(-60, 60))
def test_simulation_matches_the_window_function(delta_t: int) -> None:
    expected = stdp_window(torch.tensor(float(delta_t)), CFG).item()
    assert pair_change(delta_t) == pytest.approx(expected, rel=1e-5, abs=1e-12)


@settings(deadline=None, max_examples=30)
@given(
    seed=st.integers(0, 2**16),
    rate=st.floats(0.05, 0.9),
    w_max=st.floats(0.1, 2.0),
)
def test_weights_stay_within_bounds(seed: int, rate: float, w_max: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    cfg = STDPConfig(a_plus=0.2, a_minus=0.2, w_min=0.0, w_max=w_max)
    w = torch.rand(4, 6, generator=gen) * w_max
    rule = STDP(w, cfg)
    pre = torch.bernoulli(torch.full((50, 6), rate), generator=gen)
    post = torch.bernoulli(torch.full((50, 4), rate), generator=gen)
    rule.run(pre, post)
    assert bool((w >= 0).all()) and bool((w <= w_max).all())


def test_batch_of_identical_trains_equals_a_single_train() -> None:
    gen = torch.Generator().manual_seed(3)
    pre = torch.bernoulli(torch.full((30, 5), 0.3), generator=gen)
    post = torch.bernoulli(torch.full((30, 2), 0.3), generator=gen)
    w1, w2 = torch.full((2, 5), 0.5), torch.full((2, 5), 0.5)
    STDP(w1, CFG).run(pre, post)
    STDP(w2, CFG).run(pre.unsqueeze(1).expand(30, 3, 5), post.unsqueeze(1).expand(30, 3, 2))
    torch.testing.assert_close(w1, w2)


def test_updates_a_layer_weight_in_place_without_gradients() -> None:
    layer = torch.nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.5)
    rule = STDP(layer.weight, CFG)
    rule.step(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0]))
    rule.step(torch.tensor([0.0, 0.0, 0.0]), torch.tensor([1.0, 0.0]))
    assert layer.weight[0, 0].item() == pytest.approx(0.5 + 0.01 * math.exp(-1 / 20))
    assert layer.weight[1, 0].item() == 0.5
    assert layer.weight.grad is None


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(NeuralConfigError, match="w_min < w_max"):
        STDPConfig(w_min=1.0, w_max=0.5)
    with pytest.raises(NeuralConfigError, match="tau_plus_ms"):
        STDPConfig(tau_plus_ms=0.0)
    with pytest.raises(NeuralConfigError, match="a_minus"):
        STDPConfig(a_minus=-0.1)
    rule = STDP(torch.zeros(2, 3))
    with pytest.raises(NeuralInputError, match="pre spikes"):
        rule.step(torch.zeros(4), torch.zeros(2))
    with pytest.raises(NeuralInputError, match=r"\[0, 1\]"):
        rule.step(torch.full((3,), 2.0), torch.zeros(2))
    rule.step(torch.zeros(1, 3), torch.zeros(1, 2))
    with pytest.raises(NeuralInputError, match="reset"):
        rule.step(torch.zeros(2, 3), torch.zeros(2, 2))
    with pytest.raises(NeuralInputError, match="2-D"):
        STDP(torch.zeros(3))
