"""Dirichlet learning of the likelihood (A) and transition (B) parameters.

``pA[m] += lr * (o_m (x) q(s)) * (A[m] > 0)`` and
``pB[f][:, :, u] += lr * (q(s_f') (x) q(s_f)) * (B[f][:, :, u] > 0)``, as in pymdp's
``update_obs_likelihood_dirichlet`` / ``update_state_likelihood_dirichlet``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emily.cognition.aif.maths import Array, onehot, outer


def update_a(
    pA: Sequence[Array],
    A: Sequence[Array],
    obs: Sequence[int],
    qs: Sequence[Array],
    lr: float = 1.0,
) -> list[Array]:
    """New Dirichlet counts of A after one observation.

    Parameters
    ----------
    pA, A : per modality, shape ``(n_o[m], n_s[0], ..., n_s[F-1])``.
    obs : outcome index per modality.
    qs : posterior marginals, ``qs[f]`` of shape ``(n_s[f],)``.
    lr : learning rate (counts added per observation).
    """
    out = []
    for p, a, o in zip(pA, A, obs, strict=True):
        d = outer([onehot(int(o), a.shape[0]), *qs]) * (a > 0)
        out.append(np.asarray(p, dtype=np.float64) + lr * d)
    return out


def update_b(
    pB: Sequence[Array],
    B: Sequence[Array],
    actions: Sequence[int],
    qs: Sequence[Array],
    qs_prev: Sequence[Array],
    lr: float = 1.0,
) -> list[Array]:
    """New Dirichlet counts of B after one transition ``qs_prev --actions--> qs``.

    Parameters
    ----------
    pB, B : per factor, shape ``(n_s[f], n_s[f], n_u[f])``.
    actions : action index per factor.
    qs, qs_prev : marginals after and before the transition, ``(n_s[f],)`` each.
    """
    out = []
    for f, (p, b) in enumerate(zip(pB, B, strict=True)):
        new = np.array(p, dtype=np.float64)
        u = int(actions[f])
        new[:, :, u] += lr * outer([qs[f], qs_prev[f]]) * (b[:, :, u] > 0)
        out.append(new)
    return out
