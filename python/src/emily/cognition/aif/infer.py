"""State inference: mean-field fixed-point iteration on the variational free energy.

For factors ``f`` the posterior marginals satisfy
``q(s_f) = softmax( E_{q(s_\\f)}[ln P(o | s)] + ln P(s_f) )`` (SPM's ``spm_MDP_VB_X`` and
pymdp's ``run_vanilla_fpi``). Updates are made factor by factor (coordinate descent),
so the free energy never increases and the iteration converges.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emily.cognition.aif.maths import Array, contract, log, softmax


def log_likelihood(A: Sequence[Array], obs: Sequence[int | Array]) -> Array:
    """``ln P(o | s)`` summed over modalities.

    Parameters
    ----------
    A : ``A[m]`` of shape ``(n_o[m], n_s[0], ..., n_s[F-1])``.
    obs : per modality an outcome index, or a distribution of shape ``(n_o[m],)``.

    Returns
    -------
    Array of shape ``(n_s[0], ..., n_s[F-1])``.
    """
    ll = np.zeros(A[0].shape[1:])
    for a, o in zip(A, obs, strict=True):
        if isinstance(o, int | np.integer):
            ll = ll + log(a[int(o)])
        else:
            ll = ll + log(np.tensordot(np.asarray(o, dtype=np.float64), a, axes=(0, 0)))
    return ll


def variational_free_energy(qs: Sequence[Array], prior: Sequence[Array], ll: Array) -> float:
    """``F = sum_f KL[q(s_f) || P(s_f)] - E_q[ln P(o | s)]``, in nats.

    Parameters
    ----------
    qs, prior : per factor, shape ``(n_s[f],)``.
    ll : log likelihood of shape ``(n_s[0], ..., n_s[F-1])`` (:func:`log_likelihood`).
    """
    kl = sum(float(q @ (log(q) - log(p))) for q, p in zip(qs, prior, strict=True))
    return kl - float(contract(ll, qs))


def infer_states(
    A: Sequence[Array],
    obs: Sequence[int | Array],
    prior: Sequence[Array],
    *,
    max_iter: int = 64,
    tol: float = 1e-12,
) -> list[Array]:
    """Posterior marginals over hidden states given one observation.

    Parameters
    ----------
    A : ``A[m]`` of shape ``(n_o[m], n_s[0], ..., n_s[F-1])``.
    obs : per modality an outcome index (or a distribution over outcomes).
    prior : per factor ``P(s_f)``, shape ``(n_s[f],)`` (``D`` or ``B @ q_prev``).
    max_iter : sweeps over the factors at most.
    tol : stop when no marginal moves by more than this (max absolute change).

    Returns
    -------
    ``qs``: list of F arrays, ``qs[f]`` of shape ``(n_s[f],)``, each summing to 1.
    """
    ll = log_likelihood(A, obs)
    log_prior = [log(np.asarray(p, dtype=np.float64)) for p in prior]
    qs = [softmax(lp) for lp in log_prior]
    if len(qs) == 1:
        return [softmax(ll + log_prior[0])]
    for _ in range(max_iter):
        change = 0.0
        for f in range(len(qs)):
            new = softmax(contract(ll, qs, skip=f) + log_prior[f])
            change = max(change, float(np.abs(new - qs[f]).max()))
            qs[f] = new
        if change < tol:
            break
    return qs
