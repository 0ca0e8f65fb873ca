"""Active inference on discrete POMDPs (the standard formulation of SPM's ``spm_MDP_VB_X``
and pymdp): generative model, state inference, policy evaluation, action selection and
Dirichlet learning, one concern per module."""

from emily.cognition.aif.control import (
    expected_free_energy,
    policy_posterior,
    sample_action,
)
from emily.cognition.aif.infer import infer_states, variational_free_energy
from emily.cognition.aif.learning import update_a, update_b
from emily.cognition.aif.model import Generative

__all__ = [
    "Generative",
    "expected_free_energy",
    "infer_states",
    "policy_posterior",
    "sample_action",
    "update_a",
    "update_b",
    "variational_free_energy",
]
