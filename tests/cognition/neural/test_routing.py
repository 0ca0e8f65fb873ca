"""Routing maths against hand-computed examples, and dispatch invariants (hypothesis)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emily.cognition.neural.errors import NeuralConfigError, NeuralInputError
from emily.cognition.neural.routing import (
    dispatch,
    expert_capacity,
    load_balancing_loss,
    router_z_loss,
)

PROBS = torch.tensor([[0.7, 0.3], [0.4, 0.6], [0.9, 0.1], [0.2, 0.8]])


def test_load_balancing_loss_hand_computed() -> None:
    # balanced choice: f = [0.5, 0.5], P = [0.55, 0.45] → 2 · (0.275 + 0.225) = 1.0
    assert load_balancing_loss(PROBS, torch.tensor([0, 1, 0, 1])).item() == pytest.approx(1.0)
    # f = [0.75, 0.25] → 2 · (0.75·0.55 + 0.25·0.45) = 1.05
    assert load_balancing_loss(PROBS, torch.tensor([0, 0, 0, 1])).item() == pytest.approx(1.05)
    # all tokens on expert 0 with certainty: N · 1 · 1 = N
    sure = torch.tensor([[1.0, 0.0, 0.0]] * 5)
    assert load_balancing_loss(sure, torch.zeros(5, dtype=torch.long)).item() == pytest.approx(3)


def test_load_balancing_loss_top2_counts_a_token_once_per_expert() -> None:
    idx = torch.tensor([[0, 1], [1, 0], [0, 1], [1, 0]])
    # every token chose both experts: f = [1, 1], P = [0.55, 0.45] → 2 · 1.0 = 2.0
    assert load_balancing_loss(PROBS, idx).item() == pytest.approx(2.0)


def test_load_balancing_loss_matches_an_independent_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(40, 5, generator=gen), dim=1)
    idx = probs.argmax(1)
    n = 5
    f = [sum(1 for t in range(40) if idx[t] == i) / 40 for i in range(n)]
    p = [sum(probs[t, i].item() for t in range(40)) / 40 for i in range(n)]
    expected = n * sum(fi * pi for fi, pi in zip(f, p, strict=True))
    assert load_balancing_loss(probs, idx).item() == pytest.approx(expected, rel=1e-6)


def test_router_z_loss_hand_computed() -> None:
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    # logsumexp: ln 2 and ln 4 → mean(ln²2, ln²4) = (0.480453 + 1.921812) / 2
    expected = (math.log(2) ** 2 + math.log(4) ** 2) / 2
    assert router_z_loss(logits).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(1.201133, abs=1e-6)


def test_expert_capacity_hand_computed() -> None:
    assert expert_capacity(10, 4) == 4  # ceil(10 / 4 · 1.25) = ceil(3.125)
    assert expert_capacity(8, 4, 1.0) == 2
    assert expert_capacity(8, 4, 1.25, k=2) == 5  # ceil(2 · 8 / 4 · 1.25)
    with pytest.raises(NeuralConfigError, match="capacity_factor"):
        expert_capacity(8, 4, 0.0)


def test_batch_priority_drops_the_least_confident_tokens() -> None:
    # 6 tokens, 2 experts, CF 1.0 → capacity 3. Four tokens want expert 0.
    probs = torch.tensor(
        [[0.55, 0.45], [0.95, 0.05], [0.6, 0.4], [0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]
    )
    bpr = dispatch(probs, 1, 1.0, batch_priority=True)
    assert bpr.capacity == 3
    assert bpr.dropped[:, 0].tolist() == [True, False, False, False, False, False]
    # by position instead, the last of the four (token 3, confidence 0.9) is dropped
    pos = dispatch(probs, 1, 1.0, batch_priority=False)
    assert pos.dropped[:, 0].tolist() == [False, False, False, True, False, False]
    assert bpr.combine_weights[0, 0] == 0 and bpr.combine_weights[1, 0] == pytest.approx(0.95)


def test_top2_weights_are_renormalised_and_second_choices_come_last() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.6, 0.3, 0.1]])
    d = dispatch(probs, 2, 10.0)
    assert d.expert_index.tolist() == [[0, 1], [0, 1]]
    torch.testing.assert_close(d.combine_weights, torch.tensor([[0.625, 0.375], [2 / 3, 1 / 3]]))
    # capacity 1 per expert: first choices take both slots first, in confidence order
    tight = dispatch(torch.tensor([[0.5, 0.4, 0.1], [0.3, 0.6, 0.1]]), 2, 0.5)
    assert tight.capacity == 1
    assert tight.dropped.tolist() == [[False, True], [False, True]]


@settings(deadline=None, max_examples=60)
@given(
    tokens=st.integers(1, 64),
    experts=st.integers(1, 8),
    k=st.integers(1, 2),
    cf=st.floats(0.25, 3.0),
    priority=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_dispatch_invariants(
    tokens: int, experts: int, k: int, cf: float, priority: bool, seed: int
) -> None:
    k = min(k, experts)
    gen = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(tokens, experts, generator=gen) * 3, dim=1)
    d = dispatch(probs, k, cf, batch_priority=priority)
    assert d.capacity == math.ceil(k * tokens / experts * cf)
    kept = d.kept(experts)
    assert bool((kept <= d.capacity).all())  # capacity is never exceeded
    assert int(kept.sum()) + int(d.dropped.sum()) == tokens * k  # no assignment lost
    assert int(d.load(experts).sum()) == tokens * k
    assert bool((d.combine_weights[d.dropped] == 0).all())
    assert bool((d.combine_weights.sum(1) <= 1 + 1e-6).all())
    assert 0.0 <= d.drop_rate <= 1.0
    # an expert drops a token only when it is full
    for e in range(experts):
        if bool(((d.expert_index == e) & d.dropped).any()):
            assert int(kept[e]) == d.capacity
    if priority:  # every dropped first choice is less confident than every kept one
        conf = probs.max(1).values
        for e in range(experts):
            sel = d.expert_index[:, 0] == e
            lost, won = conf[sel & d.dropped[:, 0]], conf[sel & ~d.dropped[:, 0]]
            if lost.numel() and won.numel():
                assert float(lost.max()) <= float(won.min())


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(NeuralInputError, match="tokens, experts"):
        dispatch(torch.ones(4), 1)
    with pytest.raises(NeuralConfigError, match="k must be"):
        dispatch(PROBS, 3)
    with pytest.raises(NeuralInputError, match="tokens"):
        load_balancing_loss(PROBS, torch.tensor([0, 1]))
