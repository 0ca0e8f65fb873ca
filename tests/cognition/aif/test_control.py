"""Expected free energy, policy posterior and action selection against the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emily.cognition.aif import expected_free_energy, policy_posterior, sample_action
from emily.cognition.aif.control import action_marginals, state_info_gain
from emily.cognition.aif.model import Generative, all_policies
from tests.cognition.aif import reference
from tests.cognition.aif.models import random_model


def test_info_gain_of_an_identity_likelihood_is_ln2() -> None:
    # hand-computed: a perfectly informative cue about a fair coin yields ln 2 nats
    A = [np.eye(2)]
    assert state_info_gain(A, [np.array([0.5, 0.5])]) == pytest.approx(math.log(2), abs=1e-12)
    # an uninformative likelihood yields nothing
    assert state_info_gain([np.full((2, 2), 0.5)], [np.array([0.5, 0.5])]) == pytest.approx(0)


def test_efe_of_a_hand_worked_model() -> None:
    # one factor, 2 states, identity A, flat C: utility = ln 0.5, info gain = ln 2 -> G = 0
    B = [np.stack([np.eye(2), np.eye(2)], axis=2)]
    model = Generative(
        A=[np.eye(2)], B=B, C=[np.zeros(2)], D=[np.ones(2)], policies=all_policies([2])
    )
    G = expected_free_energy(model, [np.array([0.5, 0.5])])
    np.testing.assert_allclose(G, [0.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(
    ("n_s", "n_o", "n_u", "horizon"),
    [([3], [4], [3], 1), ([2, 3], [3, 2], [2, 3], 1), ([3, 2], [2, 4, 3], [3, 1], 2)],
)
def test_efe_matches_the_independent_reference(
    seed: int, n_s: list[int], n_o: list[int], n_u: list[int], horizon: int
) -> None:
    rng = np.random.default_rng(seed)
    model = random_model(rng, n_s, n_o, n_u, horizon)
    qs = [rng.dirichlet(np.ones(s)) for s in n_s]
    G = expected_free_energy(model, qs)
    want = [reference.efe(model.A, model.B, model.C, qs, p) for p in model.policies]
    np.testing.assert_allclose(G, want, atol=1e-6, rtol=0)


def test_param_info_gain_prefers_the_policy_that_visits_unlearnt_states() -> None:
    # state 0 is well learnt (large counts), state 1 barely: moving there is more novel
    B = [np.stack([np.eye(2), np.array([[0.0, 0.0], [1.0, 1.0]])], axis=2)]
    pA = [np.array([[50.0, 1.0], [50.0, 1.0]])]
    model = Generative(
        A=[pA[0] / pA[0].sum(0)],
        B=B,
        C=[np.zeros(2)],
        D=[np.array([1.0, 0.0])],
        policies=all_policies([2]),
        pA=pA,
    )
    qs = [np.array([1.0, 0.0])]
    plain = expected_free_energy(model, qs)
    novel = expected_free_energy(model, qs, use_param_info_gain=True)
    np.testing.assert_allclose(plain[0], plain[1], atol=1e-12)
    assert novel[1] < novel[0]
    # pymdp/SPM formula for the stay policy: -(W . qs) . qo with W = 1/sum(a) - 1/a
    w = 1 / pA[0].sum(0) - 1 / pA[0]
    assert novel[0] - plain[0] == pytest.approx(float(np.array([0.5, 0.5]) @ w[:, 0]), abs=1e-9)


def test_policy_posterior_is_the_softmax_of_the_formula() -> None:
    G = np.array([1.0, 1.5, 0.2])
    E = np.array([0.2, 0.5, 0.3])
    got = policy_posterior(G, E, gamma=16.0)
    z = np.exp(-16.0 * G + np.log(E))
    np.testing.assert_allclose(got, z / z.sum(), atol=1e-12)
    flat = policy_posterior(G, None, gamma=0.0)
    np.testing.assert_allclose(flat, np.full(3, 1 / 3))


@settings(max_examples=60, deadline=None)
@given(
    G=st.lists(st.floats(-50, 50), min_size=1, max_size=8),
    gamma=st.floats(0.0, 64.0),
)
def test_policy_posterior_is_a_distribution(G: list[float], gamma: float) -> None:
    q = policy_posterior(np.array(G), gamma=gamma)
    assert q.shape == (len(G),)
    assert np.all(q >= 0)
    assert q.sum() == pytest.approx(1.0)


def test_deterministic_action_is_the_argmax_of_the_marginal() -> None:
    policies = all_policies([3, 2])
    q_pi = np.zeros(len(policies))
    q_pi[[1, 3, 5]] = [0.2, 0.5, 0.3]  # policies (0,1), (1,1), (2,1)
    np.testing.assert_allclose(action_marginals(q_pi, policies, [3, 2])[0], [0.2, 0.5, 0.3])
    assert list(sample_action(q_pi, policies, [3, 2])) == [1, 1]


def test_stochastic_action_follows_the_sharpened_marginal() -> None:
    policies = all_policies([2])
    q_pi = np.array([0.25, 0.75])
    rng = np.random.default_rng(7)
    picks = [
        int(sample_action(q_pi, policies, [2], mode="stochastic", alpha=1.0, rng=rng)[0])
        for _ in range(4000)
    ]
    assert np.mean(picks) == pytest.approx(0.75, abs=0.03)
    with pytest.raises(ValueError, match="deterministic"):
        sample_action(q_pi, policies, [2], mode="greedy")
