"""An independent reference of the standard discrete active-inference formulas.

Written from the SPM equations by brute-force enumeration of joint states and joint
outcomes (explicit loops, no shared helpers), so the tests compare two implementations.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def joint_states(qs: list[np.ndarray]) -> list[tuple[tuple[int, ...], float]]:
    sizes = [len(q) for q in qs]
    out = []
    for idx in itertools.product(*[range(n) for n in sizes]):
        p = 1.0
        for f, i in enumerate(idx):
            p *= float(qs[f][i])
        out.append((idx, p))
    return out


def outcome_given_state(A: list[np.ndarray], idx: tuple[int, ...]) -> dict[tuple[int, ...], float]:
    table: dict[tuple[int, ...], float] = {}
    for outs in itertools.product(*[range(a.shape[0]) for a in A]):
        p = 1.0
        for m, o in enumerate(outs):
            p *= float(A[m][(o, *idx)])
        table[outs] = p
    return table


def efe(A, B, C, qs, policy) -> float:
    """-(utility + information gain) summed over the policy's steps."""
    cur = [np.array(q, dtype=float) for q in qs]
    total = 0.0
    for step in policy:
        cur = [
            np.array(
                [
                    sum(B[f][i, j, step[f]] * cur[f][j] for j in range(len(cur[f])))
                    for i in range(len(cur[f]))
                ]
            )
            for f in range(len(cur))
        ]
        states = joint_states(cur)
        # utility per modality with ln softmax(C)
        for m, a in enumerate(A):
            c = np.array(C[m], dtype=float)
            lnc = c - math.log(sum(math.exp(x) for x in c))
            for o in range(a.shape[0]):
                qo = sum(p * a[(o, *idx)] for idx, p in states)
                total += qo * lnc[o]
        # mutual information between joint states and joint outcomes
        qo_joint: dict[tuple[int, ...], float] = {}
        cond = {}
        for idx, p in states:
            cond[idx] = outcome_given_state(A, idx)
            for o, po in cond[idx].items():
                qo_joint[o] = qo_joint.get(o, 0.0) + p * po
        for idx, p in states:
            if p <= math.exp(-16):
                continue
            for o, po in cond[idx].items():
                if po > 0 and qo_joint[o] > 0:
                    total += p * po * math.log(po / qo_joint[o])
    return -total


def posterior_exact(A, obs, prior) -> list[np.ndarray]:
    """Exact Bayes marginals of P(s | o) by enumeration."""
    states = joint_states(prior)
    post = {}
    for idx, p in states:
        lik = 1.0
        for m, o in enumerate(obs):
            lik *= float(A[m][(o, *idx)])
        post[idx] = p * lik
    z = sum(post.values())
    marg = [np.zeros(len(q)) for q in prior]
    for idx, p in post.items():
        for f, i in enumerate(idx):
            marg[f][i] += p / z
    return marg


def mean_field_residual(A, obs, prior, qs) -> float:
    """Max |q_f - softmax(E_{q\\f}[ln P(o|s)] + ln P(s_f))| over factors (0 at a fixed point)."""
    worst = 0.0
    for f in range(len(qs)):
        target = np.zeros(len(qs[f]))
        for idx, _ in joint_states(prior):
            w = 1.0
            for g, i in enumerate(idx):
                if g != f:
                    w *= float(qs[g][i])
            ll = sum(math.log(float(A[m][(o, *idx)]) + 1e-16) for m, o in enumerate(obs))
            target[idx[f]] += w * ll
        target += np.log(np.asarray(prior[f]) + 1e-16)
        target = np.exp(target - target.max())
        target /= target.sum()
        worst = max(worst, float(np.abs(target - qs[f]).max()))
    return worst
