"""Neural building blocks shared by cognition and memory.

- :mod:`~emily.cognition.neural.lif`: LIF neurons (snntorch), τ_mem = 10 ms at dt = 1 ms.
- :mod:`~emily.cognition.neural.surrogate`: ATan surrogate gradient (snntorch) and its
  closed forms.
- :mod:`~emily.cognition.neural.encoders`: rate and latency spike encoders, ON/OFF split.
- :mod:`~emily.cognition.neural.stdp`: pair-based STDP with exponential traces.
- :mod:`~emily.cognition.neural.snn`: a spiking classifier that counts its operations.
- :mod:`~emily.cognition.neural.graph` and :mod:`~emily.cognition.neural.spiking_graph`:
  k-NN graphs, SpikingGCN and spiking spreading activation (the spiking GNN).
- :mod:`~emily.cognition.neural.energy`: **modelled** energy (Horowitz 45 nm).
- :mod:`~emily.cognition.neural.routing` and :mod:`~emily.cognition.neural.moe`:
  Switch / V-MoE routing, capacity, batch priority, aux and z losses; the MoE layer.
- :mod:`~emily.cognition.neural.alpha`: alpha-band gating by inhibition, phase coding.
- :mod:`~emily.cognition.neural.metrics` and :mod:`~emily.cognition.neural.events`:
  ``emily_neural_*`` metrics and ``events/neural.spikes``.

Shapes are given in the docstrings as ``[T, B, F]`` (time steps, batch, features);
times are in ms and energies in pJ.
"""

from emily.cognition.neural.alpha import AlphaConfig, AlphaGate, clamp_frequency
from emily.cognition.neural.encoders import encode, latency_encode, on_off, rate_encode
from emily.cognition.neural.energy import (
    ENERGY_LABEL,
    PRESETS,
    EnergyReport,
    OpCounts,
    report,
    timed,
)
from emily.cognition.neural.errors import NeuralConfigError, NeuralInputError
from emily.cognition.neural.graph import knn_graph, normalized_adjacency, propagate
from emily.cognition.neural.lif import LIF, LIFConfig
from emily.cognition.neural.moe import MoE, MoEConfig, MoEOutput, Router
from emily.cognition.neural.routing import (
    Dispatch,
    dispatch,
    expert_capacity,
    load_balancing_loss,
    router_z_loss,
)
from emily.cognition.neural.snn import SpikingClassifier, SpikingOutput
from emily.cognition.neural.spiking_graph import SpikingGCN, Spread, spread_activation
from emily.cognition.neural.stdp import STDP, STDPConfig, stdp_window
from emily.cognition.neural.surrogate import atan, atan_grad

__all__ = [
    "ENERGY_LABEL",
    "LIF",
    "PRESETS",
    "STDP",
    "AlphaConfig",
    "AlphaGate",
    "Dispatch",
    "EnergyReport",
    "LIFConfig",
    "MoE",
    "MoEConfig",
    "MoEOutput",
    "NeuralConfigError",
    "NeuralInputError",
    "OpCounts",
    "Router",
    "STDPConfig",
    "SpikingClassifier",
    "SpikingGCN",
    "SpikingOutput",
    "Spread",
    "atan",
    "atan_grad",
    "clamp_frequency",
    "dispatch",
    "encode",
    "expert_capacity",
    "knn_graph",
    "latency_encode",
    "load_balancing_loss",
    "normalized_adjacency",
    "on_off",
    "propagate",
    "rate_encode",
    "report",
    "router_z_loss",
    "spread_activation",
    "stdp_window",
    "timed",
]
