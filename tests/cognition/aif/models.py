"""Random and hand-made generative models shared by the active-inference tests."""

from __future__ import annotations

import numpy as np

from emily.cognition.aif.model import Generative, all_policies


def random_model(
    rng: np.random.Generator, n_s: list[int], n_o: list[int], n_u: list[int], horizon: int = 1
) -> Generative:
    A = [
        rng.dirichlet(np.ones(o), size=tuple(n_s)).transpose(len(n_s), *range(len(n_s)))
        for o in n_o
    ]
    B = [
        rng.dirichlet(np.ones(s), size=(s, u)).transpose(2, 0, 1)
        for s, u in zip(n_s, n_u, strict=True)
    ]
    C = [rng.normal(0, 2, o) for o in n_o]
    D = [rng.dirichlet(np.ones(s)) for s in n_s]
    return Generative(A=A, B=B, C=C, D=D, policies=all_policies(n_u, horizon))
