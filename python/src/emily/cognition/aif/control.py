"""Policy evaluation and action selection.

Expected free energy of a policy ``pi`` over its horizon ``t = 1..T``::

    G(pi) = - sum_t [ E_q(o_t|pi)[ln softmax(C)]          (utility)
                      + I(s_t; o_t | pi)                   (state information gain)
                      + parameter information gain of A ]  (optional, needs pA)

which is ``-(utility + salience + novelty)`` in SPM's ``spm_MDP_VB_X`` and equals minus
the ``G`` that pymdp's ``update_posterior_policies_full`` accumulates. The policy posterior
is ``softmax(gamma * (-G) + ln E)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from emily.cognition.aif.maths import EPS, Array, contract, log, outer, softmax, xlogx
from emily.cognition.aif.model import Generative


def rollout(model: Generative, qs: Sequence[Array], policy: NDArray[np.int64]) -> list[list[Array]]:
    """Predicted state marginals under ``policy``: ``T`` lists of F arrays ``(n_s[f],)``."""
    out: list[list[Array]] = []
    cur = [np.asarray(q, dtype=np.float64) for q in qs]
    for step in policy:
        cur = [model.B[f][:, :, int(u)] @ cur[f] for f, u in enumerate(step)]
        out.append(cur)
    return out


def predicted_outcomes(A: Sequence[Array], qs: Sequence[Array]) -> list[Array]:
    """``q(o_m) = A[m] . q(s)`` per modality, shape ``(n_o[m],)``."""
    return [contract(a, qs) for a in A]


def state_info_gain(A: Sequence[Array], qs: Sequence[Array]) -> float:
    """Mutual information between hidden states and the joint outcome, in nats.

    ``I = H[q(o)] - E_q(s) H[P(o|s)]`` with ``o`` the tuple of all modalities (SPM's
    ``spm_MDP_G``). States with ``q(s) <= exp(-16)`` are skipped, as in SPM; ``0 ln 0 = 0``
    exactly (SPM adds ``exp(-16)`` inside the log, a difference below 1e-6 nats).
    """
    qx = outer(qs)
    joint_qo = np.zeros(())
    expected_neg_h = 0.0
    for idx in zip(*np.nonzero(qx > np.exp(-16)), strict=True):
        po = outer([a[(slice(None), *idx)] for a in A]).ravel()
        joint_qo = joint_qo + qx[idx] * po
        expected_neg_h += float(qx[idx] * xlogx(po).sum())
    qo = np.atleast_1d(joint_qo)
    return expected_neg_h - float(xlogx(qo).sum())


def param_info_gain(pA: Sequence[Array], qo: Sequence[Array], qs: Sequence[Array]) -> float:
    """Expected information gain about A's Dirichlet parameters (pymdp ``calc_pA_info_gain``).

    ``-sum_m q(o_m) . (W_m . q(s))`` with ``W = 1/sum(a) - 1/a`` where ``a > 0``.
    """
    gain = 0.0
    for p, o in zip(pA, qo, strict=True):
        a = p + EPS
        w = (1.0 / a.sum(axis=0, keepdims=True) - 1.0 / a) * (p > 0)
        gain -= float(o @ contract(w, qs))
    return gain


def expected_free_energy(
    model: Generative,
    qs: Sequence[Array],
    *,
    use_utility: bool = True,
    use_states_info_gain: bool = True,
    use_param_info_gain: bool = False,
) -> Array:
    """Expected free energy of every policy.

    Parameters
    ----------
    model : the generative model; ``model.policies`` has shape ``(n_policies, T, F)``.
    qs : current posterior marginals, ``qs[f]`` of shape ``(n_s[f],)``.
    use_param_info_gain : add the novelty term; needs ``model.pA``.

    Returns
    -------
    ``G`` of shape ``(n_policies,)`` in nats; lower is better.
    """
    log_c = [np.log(softmax(c)) for c in model.C]
    G = np.zeros(len(model.policies))
    for k, policy in enumerate(model.policies):
        value = 0.0
        for qs_t in rollout(model, qs, policy):
            qo = predicted_outcomes(model.A, qs_t)
            if use_utility:
                value += sum(float(o @ lc) for o, lc in zip(qo, log_c, strict=True))
            if use_states_info_gain:
                value += state_info_gain(model.A, qs_t)
            if use_param_info_gain and model.pA is not None:
                value += param_info_gain(model.pA, qo, qs_t)
        G[k] = -value
    return G


def policy_posterior(G: Array, E: Array | None = None, gamma: float = 16.0) -> Array:
    """``q(pi) = softmax(gamma * (-G) + ln E)``.

    Parameters
    ----------
    G : expected free energy per policy, shape ``(n_policies,)``.
    E : habit prior over policies, shape ``(n_policies,)``; uniform when ``None``.
    gamma : policy precision (16 by default; allostasis modulates it).

    Returns
    -------
    Array of shape ``(n_policies,)`` summing to 1.
    """
    G = np.asarray(G, dtype=np.float64)
    lnE = log(E) if E is not None else np.zeros_like(G)
    return softmax(-gamma * G + lnE)


def action_marginals(
    q_pi: Array, policies: NDArray[np.int64], n_controls: Sequence[int]
) -> list[Array]:
    """Probability of each first-step action per factor: F arrays ``(n_u[f],)``."""
    out = [np.zeros(n) for n in n_controls]
    for p, policy in zip(q_pi, policies, strict=True):
        for f, u in enumerate(policy[0]):
            out[f][int(u)] += p
    return out


def sample_action(
    q_pi: Array,
    policies: NDArray[np.int64],
    n_controls: Sequence[int],
    *,
    mode: str = "deterministic",
    alpha: float = 16.0,
    rng: np.random.Generator | None = None,
) -> NDArray[np.int64]:
    """Choose the next action of each factor.

    Parameters
    ----------
    q_pi : policy posterior, shape ``(n_policies,)``.
    policies : shape ``(n_policies, T, F)``.
    mode : ``"deterministic"`` (argmax of each marginal; ties go to the lowest index) or
        ``"stochastic"`` (sample from ``softmax(alpha * ln marginal)``).
    alpha : action precision of stochastic selection (an inverse temperature).

    Returns
    -------
    Integer array of shape ``(F,)``.
    """
    marginals = action_marginals(q_pi, policies, n_controls)
    if mode == "deterministic":
        return np.array([int(np.argmax(m)) for m in marginals], dtype=np.int64)
    if mode != "stochastic":
        raise ValueError(f"mode must be 'deterministic' or 'stochastic', not {mode!r}")
    rng = rng if rng is not None else np.random.default_rng()
    picks = [int(rng.choice(len(m), p=softmax(alpha * log(m)))) for m in marginals]
    return np.array(picks, dtype=np.int64)
