"""Rate, regular and latency encoders, and the ON/OFF split."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emily.cognition.neural.encoders import (
    encode,
    encoder_macs,
    latency_encode,
    on_off,
    rate_encode,
)
from emily.cognition.neural.errors import NeuralConfigError, NeuralInputError

values = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=32)


def test_latency_hand_computed_spike_times() -> None:
    # spike step = round((1 − x)(T − 1)) with T = 5; x < 0.01 never spikes
    x = torch.tensor([[1.0, 0.5, 0.75, 0.02, 0.005, 0.0]])
    s = latency_encode(x, 5)
    assert s.shape == (5, 1, 6)
    times = [
        int(torch.nonzero(s[:, 0, i]).flatten()[0]) if s[:, 0, i].any() else None for i in range(6)
    ]
    assert times == [0, 2, 1, 4, None, None]


@settings(deadline=None)
@given(xs=values, steps=st.integers(2, 20))
def test_latency_gives_at_most_one_spike_and_larger_is_earlier(xs: list[float], steps: int) -> None:
    x = torch.tensor(xs)
    s = latency_encode(x, steps)
    assert bool((s.sum(0) <= 1).all())
    t = torch.where(s.sum(0) > 0, s.argmax(0).float(), torch.inf)
    for i in range(len(xs)):
        for j in range(len(xs)):
            if xs[i] > xs[j] and torch.isfinite(t[j]):
                assert t[i] <= t[j]


@settings(deadline=None)
@given(xs=values, steps=st.integers(1, 20))
def test_regular_rate_emits_exactly_floor_x_t_spikes(xs: list[float], steps: int) -> None:
    x = torch.tensor(xs, dtype=torch.float64)
    s = rate_encode(x, steps, mode="regular")
    assert s.shape == (steps, len(xs))
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(s.sum(0), torch.floor(x * steps + 1e-9))


def test_regular_rate_hand_computed() -> None:
    s = rate_encode(torch.tensor([0.5, 1 / 3, 1.0]), 4, mode="regular")
    assert s.T.tolist() == [[0, 1, 0, 1], [0, 0, 1, 0], [1, 1, 1, 1]]


def test_bernoulli_rate_matches_probability_and_is_reproducible() -> None:
    x = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0])
    a = rate_encode(x, 4000, generator=torch.Generator().manual_seed(7))
    b = rate_encode(x, 4000, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    # 4000 draws: standard error ≤ 0.008; 5 sigma
    assert a.mean(0).tolist() == pytest.approx(x.tolist(), abs=0.04)
    assert a[:, 0].sum() == 0 and a[:, 4].sum() == 4000


def test_on_off_split() -> None:
    y = on_off(torch.tensor([[-3.0, -1.0, 0.0, 0.5, 4.0]]), scale=2.0)
    assert y.tolist() == [[0.0, 0.0, 0.0, 0.25, 1.0, 1.0, 0.5, 0.0, 0.0, 0.0]]


def test_encode_dispatch_and_costs() -> None:
    x = torch.rand(3, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(encode(x, 6, "latency"), latency_encode(x, 6))
    assert torch.equal(encode(x, 6, "regular"), rate_encode(x, 6, mode="regular"))
    assert encoder_macs(64, 8, "latency") == 64
    assert encoder_macs(64, 8, "rate") == 512 == encoder_macs(64, 8, "regular")


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(NeuralInputError, match="NaN"):
        rate_encode(torch.tensor([float("nan")]), 3)
    with pytest.raises(NeuralInputError, match="float"):
        latency_encode(torch.tensor([1, 2]), 3)
    with pytest.raises(NeuralConfigError, match="steps"):
        latency_encode(torch.tensor([0.5]), 0)
    with pytest.raises(NeuralConfigError, match="mode"):
        rate_encode(torch.tensor([0.5]), 2, mode="poisson")  # type: ignore[arg-type]
    with pytest.raises(NeuralConfigError, match="encoding"):
        encode(torch.tensor([0.5]), 2, "delta")  # type: ignore[arg-type]
    with pytest.raises(NeuralConfigError, match="scale"):
        on_off(torch.tensor([0.5]), 0.0)


@settings(deadline=None, max_examples=20)
@given(xs=values)
def test_single_step_latency_is_a_threshold(xs: list[float]) -> None:
    x = torch.tensor(xs)
    assert latency_encode(x, 1)[0].tolist() == (x >= 0.01).float().tolist()
