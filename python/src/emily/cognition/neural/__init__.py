"""Neural building blocks shared by cognition and memory.

- :mod:`~emily.cognition.neural.lif`: LIF neurons (snntorch), τ_mem = 10 ms at dt = 1 ms.
- :mod:`~emily.cognition.neural.surrogate`: ATan surrogate gradient (snntorch) and its
  closed forms.
- :mod:`~emily.cognition.neural.encoders`: rate and latency spike encoders, ON/OFF split.
- :mod:`~emily.cognition.neural.stdp`: pair-based STDP with exponential traces.
- :mod:`~emily.cognition.neural.snn`: a spiking classifier that counts its operations.
- :mod:`~emily.cognition.neural.energy`: **modelled** energy (Horowitz 45 nm).

Every tensor shape is given in the docstrings as ``[T, B, F]`` (time steps, batch,
features); times are in ms and energies in pJ.
"""

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
from emily.cognition.neural.lif import LIF, LIFConfig
from emily.cognition.neural.snn import SpikingClassifier, SpikingOutput
from emily.cognition.neural.stdp import STDP, STDPConfig, stdp_window
from emily.cognition.neural.surrogate import atan, atan_grad

__all__ = [
    "ENERGY_LABEL",
    "LIF",
    "PRESETS",
    "STDP",
    "EnergyReport",
    "LIFConfig",
    "NeuralConfigError",
    "NeuralInputError",
    "OpCounts",
    "STDPConfig",
    "SpikingClassifier",
    "SpikingOutput",
    "atan",
    "atan_grad",
    "encode",
    "latency_encode",
    "on_off",
    "rate_encode",
    "report",
    "stdp_window",
    "timed",
]
