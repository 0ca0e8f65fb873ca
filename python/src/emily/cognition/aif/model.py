"""The generative model of a discrete POMDP, with shape checks.

Notation (SPM / pymdp). ``F`` hidden-state factors with ``n_s[f]`` states each, ``M``
observation modalities with ``n_o[m]`` outcomes each, ``n_u[f]`` actions per factor.

- ``A[m]``: likelihood ``P(o_m | s)``, shape ``(n_o[m], n_s[0], ..., n_s[F-1])``,
  columns sum to 1.
- ``B[f]``: transitions ``P(s_f' | s_f, u_f)``, shape ``(n_s[f], n_s[f], n_u[f])``.
- ``C[m]``: log preferences over outcomes, shape ``(n_o[m],)``; like pymdp they are
  turned into a log probability with ``ln softmax(C)`` when utility is computed.
- ``D[f]``: prior over initial states, shape ``(n_s[f],)``.
- ``E``: prior (habit) over policies, shape ``(n_policies,)``.
- ``policies``: integer array ``(n_policies, T, F)``: action of each factor at each step.
- ``pA`` / ``pB``: optional Dirichlet concentration parameters of the same shapes as
  ``A`` / ``B``, learnt by :mod:`emily.cognition.aif.learning`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from emily.cognition.aif.maths import Array, normalise
from emily.cognition.errors import ModelError


@dataclass
class Generative:
    """A, B, C, D, E and the policy set of one agent (see the module docstring)."""

    A: list[Array]
    B: list[Array]
    C: list[Array]
    D: list[Array]
    policies: NDArray[np.int64]
    E: Array = field(default_factory=lambda: np.zeros(0))
    pA: list[Array] | None = None
    pB: list[Array] | None = None

    def __post_init__(self) -> None:
        self.A = [np.asarray(a, dtype=np.float64) for a in self.A]
        self.B = [np.asarray(b, dtype=np.float64) for b in self.B]
        self.C = [np.asarray(c, dtype=np.float64) for c in self.C]
        self.D = [normalise(np.asarray(d, dtype=np.float64)) for d in self.D]
        self.policies = np.asarray(self.policies, dtype=np.int64)
        if self.E.size == 0:
            self.E = np.full(len(self.policies), 1.0 / max(len(self.policies), 1))
        self.E = np.asarray(self.E, dtype=np.float64)
        self.validate()

    @property
    def n_states(self) -> list[int]:
        """``n_s[f]`` per factor."""
        return [b.shape[0] for b in self.B]

    @property
    def n_obs(self) -> list[int]:
        """``n_o[m]`` per modality."""
        return [a.shape[0] for a in self.A]

    @property
    def n_controls(self) -> list[int]:
        """``n_u[f]`` per factor."""
        return [b.shape[2] for b in self.B]

    def validate(self) -> None:
        """Raise :class:`ModelError` naming the first inconsistent array."""
        ns = self.n_states
        for m, a in enumerate(self.A):
            if a.shape[1:] != tuple(ns):
                raise ModelError(f"A[{m}] has shape {a.shape}; expected (n_o, *{tuple(ns)})")
            if not np.allclose(a.sum(axis=0), 1.0, atol=1e-8) or (a < 0).any():
                raise ModelError(f"A[{m}]: every column must be a distribution over outcomes")
        for f, b in enumerate(self.B):
            if b.ndim != 3 or b.shape[0] != b.shape[1]:
                raise ModelError(f"B[{f}] has shape {b.shape}; expected (n_s, n_s, n_u)")
            if not np.allclose(b.sum(axis=0), 1.0, atol=1e-8) or (b < 0).any():
                raise ModelError(f"B[{f}]: every column must be a distribution over next states")
        if len(self.C) != len(self.A) or any(
            c.shape != (a.shape[0],) for c, a in zip(self.C, self.A, strict=True)
        ):
            raise ModelError("C needs one vector of length n_o[m] per modality of A")
        if len(self.D) != len(self.B) or any(
            d.shape != (n,) for d, n in zip(self.D, ns, strict=True)
        ):
            raise ModelError("D needs one vector of length n_s[f] per factor of B")
        if self.policies.ndim != 3 or self.policies.shape[2] != len(self.B):
            raise ModelError(
                f"policies has shape {self.policies.shape}; expected (n_policies, T, F={len(ns)})"
            )
        if (self.policies < 0).any() or (self.policies >= np.array(self.n_controls)).any():
            raise ModelError("policies name an action outside 0..n_u[f]-1")
        if self.E.shape != (len(self.policies),) or (self.E < 0).any():
            raise ModelError("E must be a non-negative vector with one entry per policy")

    def learn_from_dirichlet(self) -> None:
        """Set ``A``/``B`` to the expected values of ``pA``/``pB`` (normalised columns)."""
        if self.pA is not None:
            self.A = [normalise(p) for p in self.pA]
        if self.pB is not None:
            self.B = [normalise(p) for p in self.pB]


def all_policies(n_controls: list[int], horizon: int = 1) -> NDArray[np.int64]:
    """Every action sequence: shape ``(prod(n_u)**T, T, F)`` (pymdp ``construct_policies``)."""
    per_step = list(itertools.product(*[range(n) for n in n_controls]))
    seqs = list(itertools.product(per_step, repeat=horizon))
    return np.array(seqs, dtype=np.int64).reshape(len(seqs), horizon, len(n_controls))
