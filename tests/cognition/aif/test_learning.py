"""Dirichlet learning of A and B."""

from __future__ import annotations

import numpy as np
import pytest

from emily.cognition.aif import update_a, update_b
from emily.cognition.aif.model import Generative, all_policies
from emily.cognition.errors import ModelError


def test_update_a_adds_the_outer_product_where_a_is_nonzero() -> None:
    A = [np.array([[0.5, 1.0], [0.5, 0.0]])]
    pA = [np.ones((2, 2))]
    qs = [np.array([0.3, 0.7])]
    (new,) = update_a(pA, A, [1], qs, lr=2.0)
    # outcome 1: row 1 gains 2 * qs, except where A is 0 (state 1)
    np.testing.assert_allclose(new, [[1.0, 1.0], [1.6, 1.0]])


def test_update_b_learns_a_transition() -> None:
    B = [np.stack([np.eye(2), np.full((2, 2), 0.5)], axis=2)]
    pB = [np.ones((2, 2, 2))]
    (new,) = update_b(pB, B, [1], [np.array([0.0, 1.0])], [np.array([1.0, 0.0])], lr=1.0)
    assert new[1, 0, 1] == 2.0
    assert new.sum() == 9.0


def test_repeated_observations_teach_the_likelihood() -> None:
    rng = np.random.default_rng(0)
    true_a = np.array([[0.9, 0.2], [0.1, 0.8]])
    pA = [np.ones((2, 2))]
    model = Generative(
        A=[pA[0] / 2],
        B=[np.eye(2)[:, :, None]],
        C=[np.zeros(2)],
        D=[np.ones(2)],
        policies=all_policies([1]),
        pA=pA,
    )
    for _ in range(3000):
        s = int(rng.integers(2))
        o = int(rng.random() > true_a[0, s])
        model.pA = update_a(model.pA or [], model.A, [o], [np.eye(2)[s]])
    model.learn_from_dirichlet()
    np.testing.assert_allclose(model.A[0], true_a, atol=0.04)


def test_bad_model_shapes_are_named() -> None:
    with pytest.raises(ModelError, match=r"A\[0\]"):
        Generative(
            A=[np.ones((2, 3)) / 2],
            B=[np.eye(2)[:, :, None]],
            C=[np.zeros(2)],
            D=[np.ones(2)],
            policies=all_policies([1]),
        )
    with pytest.raises(ModelError, match="policies"):
        Generative(
            A=[np.eye(2)],
            B=[np.eye(2)[:, :, None]],
            C=[np.zeros(2)],
            D=[np.ones(2)],
            policies=np.array([[[3]]]),
        )
