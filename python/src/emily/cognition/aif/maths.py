"""Numerical helpers shared by the active-inference modules (pymdp's ``maths.py``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

#: Floor added inside logarithms, as in pymdp's ``spm_log_single`` (``EPS_VAL``).
EPS = 1e-16


def log(x: Array) -> Array:
    """``ln(x + 1e-16)``, elementwise; the SPM convention for log of probabilities."""
    return np.log(np.asarray(x, dtype=np.float64) + EPS)


def softmax(x: Array, axis: int = 0) -> Array:
    """Normalised exponential along ``axis`` (max-shifted, so large inputs are safe)."""
    z = np.asarray(x, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    out: Array = e / e.sum(axis=axis, keepdims=True)
    return out


def normalise(x: Array) -> Array:
    """Divide along axis 0 so each column sums to one (columns of zeros stay uniform)."""
    x = np.asarray(x, dtype=np.float64)
    s = x.sum(axis=0, keepdims=True)
    n = x.shape[0]
    out: Array = np.where(s > 0, x / np.where(s > 0, s, 1.0), 1.0 / n)
    return out


def outer(vectors: Sequence[Array]) -> Array:
    """Outer product of 1-D arrays: shape ``(len(v0), len(v1), ...)`` (SPM's ``spm_cross``)."""
    out = np.ones(())
    for v in vectors:
        out = np.multiply.outer(out, np.asarray(v, dtype=np.float64))
    return out


def contract(tensor: Array, qs: Sequence[Array], skip: int | None = None) -> Array:
    """Contract the trailing ``len(qs)`` axes of ``tensor`` with the factor marginals.

    Parameters
    ----------
    tensor : shape ``(*lead, n_s[0], ..., n_s[F-1])``.
    qs : F vectors, ``qs[f]`` of shape ``(n_s[f],)``.
    skip : a factor whose axis is kept (SPM's ``spm_dot`` with ``dims_to_omit``).

    Returns
    -------
    Array of shape ``lead``, or ``(*lead, n_s[skip])`` when ``skip`` is given.
    """
    t = np.asarray(tensor, dtype=np.float64)
    n_lead = t.ndim - len(qs)
    operands: list[object] = [t, list(range(t.ndim))]
    for f, q in enumerate(qs):
        if f != skip:
            operands += [np.asarray(q, dtype=np.float64), [n_lead + f]]
    keep = list(range(n_lead)) + ([n_lead + skip] if skip is not None else [])
    out: Array = np.einsum(*operands, keep)  # type: ignore[call-overload]
    return out


def xlogx(x: Array) -> Array:
    """``x ln x`` elementwise with ``0 ln 0 = 0``."""
    x = np.asarray(x, dtype=np.float64)
    pos = x > 0
    out: Array = np.where(pos, x * np.log(np.where(pos, x, 1.0)), 0.0)
    return out


def entropy(p: Array) -> float:
    """Shannon entropy ``-sum p ln p`` of a distribution, in nats."""
    p = np.asarray(p, dtype=np.float64)
    return float(-(p * log(p)).sum())


def onehot(index: int, n: int) -> Array:
    """Vector of length ``n`` with a one at ``index``."""
    v = np.zeros(n)
    v[index] = 1.0
    return v
