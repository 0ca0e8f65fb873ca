"""The cognition agent's generative model and its decisions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from emily.cognition import agent
from emily.cognition.aif.control import expected_free_energy
from emily.cognition.aif.infer import infer_states
from tests.cognition.aif import reference


def test_the_model_is_a_valid_pomdp() -> None:
    model = agent.build_model()  # validate() runs in the constructor
    assert model.n_states == [4, 5]
    assert model.n_obs == [3, 3, 2, 3, 3]
    assert len(model.policies) == 4


def test_model_efe_matches_the_reference() -> None:
    model = agent.build_model(impatience=0.3)
    qs = infer_states([model.A[0], model.A[2]], [1, 1], model.D)
    G = expected_free_energy(model, qs)
    want = [reference.efe(model.A, model.B, model.C, qs, p) for p in model.policies]
    np.testing.assert_allclose(G, want, atol=1e-6)


@pytest.mark.parametrize("impatience", [0.0, 0.3, 0.77, 1.0])
def test_cached_evidence_gives_the_engines_efe_at_any_impatience(impatience: float) -> None:
    """Reference: the engine on the model built with this impatience, per observation."""
    for reflex, memory, novelty in itertools.product(range(3), [None, 0, 1, 2], range(2)):
        obs = agent.Observation(reflex=reflex, memory=memory, novelty=novelty)
        model = agent.build_model(impatience)
        mods = [0, 2] if memory is None else [0, 1, 2]
        values = {0: reflex, 1: memory or 0, 2: novelty}
        qs = infer_states([model.A[m] for m in mods], [values[m] for m in mods], model.D)
        want = expected_free_energy(model, qs)
        np.testing.assert_allclose(agent.expected_free_energies(obs, impatience), want, atol=1e-12)
        d = agent.decide(obs, impatience=impatience)
        np.testing.assert_allclose(list(d.need.values()), qs[0], atol=1e-12)


@pytest.mark.parametrize(
    ("obs", "policy"),
    [
        (agent.Observation(reflex=2, memory=None, novelty=0), "reflex"),
        (agent.Observation(reflex=0, memory=2, novelty=0), "recall"),
        (agent.Observation(reflex=0, memory=0, novelty=1), "deliberate"),
    ],
)
def test_canonical_situations(obs: agent.Observation, policy: str) -> None:
    d = agent.decide(obs)
    assert d.policy == policy
    assert sum(d.q_pi.values()) == pytest.approx(1.0)
    assert sum(d.need.values()) == pytest.approx(1.0)
    assert min(d.G, key=d.G.__getitem__) == policy


def test_disallowed_policies_get_zero_probability() -> None:
    obs = agent.Observation(reflex=0, memory=0, novelty=1)
    d = agent.decide(obs, allowed=("clarify", "recall"))
    assert d.q_pi["deliberate"] == 0.0 and d.q_pi["reflex"] == 0.0
    assert d.policy in ("clarify", "recall")
    with pytest.raises(ValueError, match="at least one"):
        agent.decide(obs, allowed=())


def test_gamma_sharpens_the_posterior() -> None:
    obs = agent.Observation(reflex=1, memory=1, novelty=1)
    soft, sharp = agent.decide(obs, gamma=1.0), agent.decide(obs, gamma=64.0)
    assert max(sharp.q_pi.values()) > max(soft.q_pi.values())


def test_stochastic_selection_samples_from_the_posterior() -> None:
    obs = agent.Observation(reflex=1, memory=1, novelty=1)
    rng = np.random.default_rng(0)
    picks = {
        agent.decide(obs, gamma=1.0, stochastic=True, temperature=16.0, rng=rng).policy
        for _ in range(200)
    }
    assert len(picks) > 1


def test_binning() -> None:
    assert agent.bin_reflex(0.9, 0.8) == 2 and agent.bin_reflex(0.5, 0.8) == 1
    assert agent.bin_reflex(0.1, 0.8) == 0
    assert agent.bin_memory(None) == 0 and agent.bin_memory(0.4) == 1 and agent.bin_memory(0.9) == 2
