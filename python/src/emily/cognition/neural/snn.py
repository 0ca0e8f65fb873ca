"""A two-layer spiking classifier with operation counting.

Encoded input spikes ``[T, B, F]`` drive a dense layer into LIF neurons; their spikes
drive a readout layer whose output is integrated over time (a non-firing accumulator):

    logits = (1/T) Σ_t W_out · S_hidden[t] + b_out

The readout receives binary spikes, so it costs ACs only: SOP = spikes × fan-out. The
input layer costs ACs when its input is spikes and one MAC per weight per step when it
is real-valued (a current, as the reflex's MiniLM features are).
snntorch provides the neurons; the counting is ours (snntorch does not count SOPs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from emily.cognition.neural.energy import OpCounts, input_layer_counts, sop
from emily.cognition.neural.errors import NeuralInputError
from emily.cognition.neural.lif import LIF, LIFConfig


@dataclass(frozen=True)
class SpikingOutput:
    """Result of :meth:`SpikingClassifier.forward`.

    Attributes
    ----------
    logits : ``[B, C]`` time-averaged readout.
    hidden_spikes : ``[T, B, H]`` spikes of the hidden LIF layer.
    counts : operations of this batch (input and hidden spikes, SOPs, state updates).
    """

    logits: torch.Tensor
    hidden_spikes: torch.Tensor
    counts: OpCounts


class SpikingClassifier(nn.Module):
    """``F → H (LIF) → C`` spiking network trained with surrogate gradients (BPTT).

    Parameters
    ----------
    n_in : input features ``F`` (after encoding, e.g. 2× for ON/OFF channels).
    n_hidden : LIF neurons ``H``.
    n_out : classes ``C``.
    lif : neuron parameters (τ_mem = 10 ms, dt = 1 ms, V_th = 1 by default).
    """

    def __init__(self, n_in: int, n_hidden: int, n_out: int, lif: LIFConfig | None = None):
        super().__init__()
        self.n_in, self.n_hidden, self.n_out = n_in, n_hidden, n_out
        self.fc_in = nn.Linear(n_in, n_hidden)
        self.lif = LIF(lif)
        self.fc_out = nn.Linear(n_hidden, n_out)

    def forward(self, spikes: torch.Tensor) -> SpikingOutput:
        """Run the network on encoded spikes.

        Parameters
        ----------
        spikes : ``[T, B, F]`` in {0., 1.}, from :mod:`emily.cognition.neural.encoders`,
            or real-valued currents (then the input layer is priced as MACs).

        Returns
        -------
        :class:`SpikingOutput` with logits ``[B, C]``.
        """
        if spikes.dim() != 3 or spikes.shape[2] != self.n_in:
            raise NeuralInputError(
                f"SpikingClassifier expects spikes [T, B, {self.n_in}], got {tuple(spikes.shape)}"
            )
        steps, batch = spikes.shape[0], spikes.shape[1]
        hidden, _ = self.lif(self.fc_in(spikes))
        logits = self.fc_out(hidden).mean(dim=0)
        first = input_layer_counts(spikes, self.n_hidden)
        counts = OpCounts(
            samples=batch,
            spikes=first.spikes + int(hidden.sum().item()),
            sop=first.sop + sop(hidden, self.n_out),
            mac=first.mac,
            state_updates=steps * batch * self.n_hidden,
        )
        return SpikingOutput(logits=logits, hidden_spikes=hidden, counts=counts)
