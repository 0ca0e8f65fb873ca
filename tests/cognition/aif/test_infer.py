"""State inference by fixed-point iteration, against exact and mean-field references."""

from __future__ import annotations

import numpy as np
import pytest

from emily.cognition.aif import infer_states, variational_free_energy
from emily.cognition.aif.infer import log_likelihood
from tests.cognition.aif import reference
from tests.cognition.aif.models import random_model


@pytest.mark.parametrize("seed", range(10))
def test_single_factor_posterior_is_exact_bayes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    model = random_model(rng, [5], [4, 3], [1])
    obs = [int(rng.integers(4)), int(rng.integers(3))]
    got = infer_states(model.A, obs, model.D)
    want = reference.posterior_exact(model.A, obs, model.D)
    np.testing.assert_allclose(got[0], want[0], atol=1e-9)


def test_hand_worked_posterior() -> None:
    # prior (0.5, 0.5), P(o=0|s) = (0.9, 0.2): posterior = (0.45, 0.1)/0.55
    A = [np.array([[0.9, 0.2], [0.1, 0.8]])]
    (q,) = infer_states(A, [0], [np.array([0.5, 0.5])])
    np.testing.assert_allclose(q, [0.45 / 0.55, 0.1 / 0.55], atol=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_factorised_likelihood_gives_exact_marginals(seed: int) -> None:
    # each modality depends on one factor: the mean-field posterior is exact
    rng = np.random.default_rng(100 + seed)
    a0 = rng.dirichlet(np.ones(3), size=2).T  # (3 outcomes, 2 states of factor 0)
    a1 = rng.dirichlet(np.ones(2), size=4).T  # (2 outcomes, 4 states of factor 1)
    A = [np.repeat(a0[:, :, None], 4, axis=2), np.repeat(a1[:, None, :], 2, axis=1)]
    prior = [rng.dirichlet(np.ones(2)), rng.dirichlet(np.ones(4))]
    obs = [int(rng.integers(3)), int(rng.integers(2))]
    got = infer_states(A, obs, prior)
    want = reference.posterior_exact(A, obs, prior)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-9)


@pytest.mark.parametrize("seed", range(10))
def test_multi_factor_result_is_a_mean_field_fixed_point(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    model = random_model(rng, [3, 4, 2], [3, 5], [1, 1, 1])
    obs = [int(rng.integers(3)), int(rng.integers(5))]
    qs = infer_states(model.A, obs, model.D)
    assert reference.mean_field_residual(model.A, obs, model.D, qs) < 1e-6
    for q in qs:
        assert q.sum() == pytest.approx(1.0)
    # and it has lower free energy than nearby distributions
    ll = log_likelihood(model.A, obs)
    best = variational_free_energy(qs, model.D, ll)
    for _ in range(20):
        jittered = [q * rng.uniform(0.8, 1.2, q.shape) for q in qs]
        jittered = [j / j.sum() for j in jittered]
        assert variational_free_energy(jittered, model.D, ll) >= best - 1e-12


def test_distributional_observation_equals_index_for_a_one_hot() -> None:
    rng = np.random.default_rng(3)
    model = random_model(rng, [3, 2], [4], [1, 1])
    by_index = infer_states(model.A, [2], model.D)
    by_dist = infer_states(model.A, [np.eye(4)[2]], model.D)
    for a, b in zip(by_index, by_dist, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)
