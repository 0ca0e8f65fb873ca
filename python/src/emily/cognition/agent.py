"""The cognition service's own generative model: what does this observation need?

Hidden-state factors
--------------------
0. ``need`` (4 states, uncontrolled): reflex-answerable, memory-answerable, needs
   deliberation, ambiguous.
1. ``act`` (5 states, controlled): start, then the policy taken: reflex, recall,
   deliberate, clarify.

Observation modalities
----------------------
0. reflex confidence: low, mid, high;  1. memory match: none, weak, strong;
2. novelty: low, high;  3. outcome: none, success, failure (of the act, given the need);
4. cost: cheap, moderate, expensive (of the act).

Policies are one step: answer by reflex, recall then answer, deliberate with the LLM
(with recalled memories as context), or ask to clarify. Preferences ``C`` favour
success and cheapness; allostasis sets ``gamma`` and scales the cost preference by
impatience. The likelihood numbers are design choices stated here, not fitted; the
outcome likelihood ``P(success | need, act)`` is the prior that
:mod:`emily.cognition.learning` updates from feedback and passes back as ``success``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from emily.cognition.aif import Generative, expected_free_energy, infer_states, policy_posterior
from emily.cognition.aif.control import predicted_outcomes, rollout, sample_action
from emily.cognition.aif.maths import softmax

NEEDS = ("reflex", "memory", "deliberate", "ambiguous")
POLICIES = ("reflex", "recall", "deliberate", "clarify")
N_ACT = 1 + len(POLICIES)
COST = 4
"""Index of the cost modality (the only one whose preference depends on impatience)."""

# P(reflex confidence | need): low, mid, high
_A_REFLEX = np.array([[0.10, 0.50, 0.55, 0.25], [0.30, 0.35, 0.35, 0.55], [0.60, 0.15, 0.10, 0.20]])
# P(memory match | need): none, weak, strong
_A_MEMORY = np.array([[0.50, 0.05, 0.45, 0.40], [0.35, 0.25, 0.45, 0.45], [0.15, 0.70, 0.10, 0.15]])
# P(novelty | need): low, high
_A_NOVELTY = np.array([[0.85, 0.60, 0.30, 0.55], [0.15, 0.40, 0.70, 0.45]])
# P(success | need, act) for acts reflex, recall, deliberate, clarify
_SUCCESS = np.array(
    [
        [0.95, 0.40, 0.80, 0.25],  # need reflex
        [0.10, 0.90, 0.70, 0.25],  # need memory
        [0.05, 0.25, 0.85, 0.25],  # need deliberation
        [0.15, 0.20, 0.40, 0.90],  # ambiguous
    ]
)
Success = tuple[tuple[float, ...], ...]
"""``P(success | need, act)`` ``[4 needs][4 acts]``, hashable so decisions can be cached."""
PRIOR_SUCCESS: Success = tuple(tuple(float(v) for v in row) for row in _SUCCESS)
# cost of each act: cheap, moderate, expensive
_COST = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


def _likelihood(per_need: np.ndarray) -> np.ndarray:
    """``[n_o, 4]`` (depends on need only) -> ``[n_o, 4, N_ACT]``."""
    return np.repeat(per_need[:, :, None], N_ACT, axis=2)


def build_model(impatience: float = 0.0, success: Success = PRIOR_SUCCESS) -> Generative:
    """The generative model; ``impatience`` in [0, 1] deepens the cost preference (x1 to
    x1.5); ``success`` is ``P(success | need, act)`` (the design's prior by default)."""
    p_success = np.asarray(success, dtype=np.float64)
    if p_success.shape != _SUCCESS.shape or not ((p_success > 0) & (p_success < 1)).all():
        raise ValueError(f"success must be {_SUCCESS.shape} probabilities in (0, 1)")
    outcome = np.zeros((3, len(NEEDS), N_ACT))
    outcome[0, :, 0] = 1.0  # nothing happens before acting
    outcome[1, :, 1:] = p_success
    outcome[2, :, 1:] = 1.0 - p_success
    cost = np.zeros((3, len(NEEDS), N_ACT))
    cost[0, :, 0] = 1.0
    for a in range(len(POLICIES)):
        cost[:, :, a + 1] = _COST[a][:, None]
    B_need = np.eye(len(NEEDS))[:, :, None]
    B_act = np.zeros((N_ACT, N_ACT, N_ACT))
    for u in range(N_ACT):
        B_act[u, :, u] = 1.0
    c_cost = cost_preference(impatience)
    return Generative(
        A=[
            _likelihood(_A_REFLEX),
            _likelihood(_A_MEMORY),
            _likelihood(_A_NOVELTY),
            outcome,
            cost,
        ],
        B=[B_need, B_act],
        C=[np.zeros(3), np.zeros(3), np.zeros(2), np.array([0.0, 3.0, -3.0]), c_cost],
        D=[np.full(len(NEEDS), 0.25), np.eye(N_ACT)[0]],
        policies=np.array([[[0, u]] for u in range(1, N_ACT)], dtype=np.int64),
    )


def cost_preference(impatience: float = 0.0) -> np.ndarray:
    """``C`` of the cost modality ``[3]``: cheap 0, moderate -0.6, expensive -1.6 nats,
    deepened by ``impatience`` in [0, 1] (x1 to x1.5)."""
    return -np.array([0.0, 0.6, 1.6]) * (1.0 + 0.5 * float(np.clip(impatience, 0.0, 1.0)))


@dataclass(frozen=True)
class Observation:
    """Binned evidence: indices into the first three modalities (``None`` = unobserved)."""

    reflex: int
    memory: int | None
    novelty: int


def bin_reflex(confidence: float, threshold: float) -> int:
    """0 low (< 0.4 of the threshold), 1 mid, 2 high (at or above the threshold)."""
    return 2 if confidence >= threshold else (1 if confidence >= 0.4 * threshold else 0)


def bin_memory(best_score: float | None, weak: float = 0.35, strong: float = 0.6) -> int:
    """0 none, 1 weak, 2 strong, from the best cosine similarity of recalled episodes."""
    if best_score is None or best_score < weak:
        return 0
    return 2 if best_score >= strong else 1


@dataclass(frozen=True)
class Decision:
    """The agent's inference for one cycle.

    need : posterior over :data:`NEEDS`; G : expected free energy per policy (nats);
    q_pi : policy posterior; policy : the chosen policy name.
    """

    need: dict[str, float]
    G: dict[str, float]
    q_pi: dict[str, float]
    policy: str


def decide(
    obs: Observation,
    *,
    gamma: float = 16.0,
    impatience: float = 0.0,
    allowed: tuple[str, ...] = POLICIES,
    stochastic: bool = False,
    temperature: float = 1.0,
    rng: np.random.Generator | None = None,
    success: Success = PRIOR_SUCCESS,
) -> Decision:
    """Infer the need, score the policies and pick one.

    Parameters
    ----------
    obs : binned evidence; an unobserved memory modality is left out of inference.
    gamma : policy precision (allostasis modulates it).
    allowed : policies available now (e.g. without ``deliberate`` when the LLM is down);
        the others get zero prior (habit ``E``).
    stochastic, temperature : sample the action at precision ``16 / temperature``
        instead of taking the most probable. Deterministic decisions are cached, with
        ``gamma`` and ``impatience`` rounded to 0.01.
    success : the learned ``P(success | need, act)`` (see :func:`build_model`).
    """
    if not stochastic:
        return _decide_cached(obs, round(gamma, 2), round(impatience, 2), tuple(allowed), success)
    return _decide(obs, gamma, impatience, allowed, True, temperature, rng, success)


@lru_cache(maxsize=4096)
def _decide_cached(
    obs: Observation,
    gamma: float,
    impatience: float,
    allowed: tuple[str, ...],
    success: Success,
) -> Decision:
    """Deterministic decisions are pure: cache them (gamma, impatience rounded to 0.01)."""
    return _decide(obs, gamma, impatience, allowed, False, 1.0, None, success)


@lru_cache(maxsize=256)
def _evidence(
    obs: Observation, success: Success = PRIOR_SUCCESS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What does not depend on impatience, computed once per observation by the engine.

    Returns
    -------
    need : posterior over :data:`NEEDS` ``[4]``. base : ``G`` per policy without the
    cost modality's utility ``[P]`` (nats). cost_outcomes : predicted cost outcomes
    summed over each policy's steps ``[P, 3]``.
    """
    model = build_model(0.0, success)
    modalities = [0, 2] if obs.memory is None else [0, 1, 2]
    values = {0: obs.reflex, 1: obs.memory, 2: obs.novelty}
    qs = infer_states(
        [model.A[m] for m in modalities], [int(values[m] or 0) for m in modalities], model.D
    )
    G = expected_free_energy(model, qs)
    cost_outcomes = np.array(
        [
            sum(predicted_outcomes([model.A[COST]], q)[0] for q in rollout(model, qs, policy))
            for policy in model.policies
        ]
    )
    base = G + cost_outcomes @ np.log(softmax(model.C[COST]))
    return qs[0], base, cost_outcomes


def warm_up() -> int:
    """Compute the evidence of every binned observation now; returns how many."""
    seen = 0
    for reflex in range(3):
        for memory in (None, 0, 1, 2):
            for novelty in range(2):
                _evidence(Observation(reflex=reflex, memory=memory, novelty=novelty))
                seen += 1
    return seen


def expected_free_energies(
    obs: Observation, impatience: float = 0.0, success: Success = PRIOR_SUCCESS
) -> np.ndarray:
    """``G`` per policy ``[P]`` (nats) under the model built with ``impatience``.

    Equal to ``expected_free_energy(build_model(impatience, success), infer_states(...))``:
    only the cost preference depends on impatience, and utility is linear in its
    log-softmax, so the engine runs once per observation (and learned ``success``) and
    impatience costs one ``[P, 3]`` product.
    """
    _, base, cost_outcomes = _evidence(obs, success)
    G: np.ndarray = base - cost_outcomes @ np.log(softmax(cost_preference(impatience)))
    return G


def _decide(
    obs: Observation,
    gamma: float,
    impatience: float,
    allowed: tuple[str, ...],
    stochastic: bool,
    temperature: float,
    rng: np.random.Generator | None,
    success: Success = PRIOR_SUCCESS,
) -> Decision:
    need = _evidence(obs, success)[0]
    G = expected_free_energies(obs, impatience, success)
    mask = np.array([p in allowed for p in POLICIES])
    if not mask.any():
        raise ValueError("at least one policy must be allowed")
    # disallowed policies get exactly zero probability (habit E = 0 for them)
    q_pi = np.zeros(len(POLICIES))
    q_pi[mask] = policy_posterior(G[mask], np.full(int(mask.sum()), 1.0 / mask.sum()), gamma)
    if stochastic:
        model = build_model(impatience, success)
        act = int(
            sample_action(
                q_pi,
                model.policies,
                model.n_controls,
                mode="stochastic",
                alpha=16.0 / temperature,
                rng=rng,
            )[1]
        )
        policy = POLICIES[act - 1]
    else:
        policy = POLICIES[int(np.argmax(q_pi))]
    return Decision(
        need={n: float(p) for n, p in zip(NEEDS, need, strict=True)},
        G={p: float(g) for p, g in zip(POLICIES, G, strict=True)},
        q_pi={p: float(q) for p, q in zip(POLICIES, q_pi, strict=True)},
        policy=policy,
    )
