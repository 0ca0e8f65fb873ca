"""The spiking classifier: counting against an independent recount, and learning."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

from emily.cognition.neural.encoders import latency_encode, rate_encode
from emily.cognition.neural.errors import NeuralInputError
from emily.cognition.neural.snn import SpikingClassifier


def test_counts_match_a_recount_of_the_spikes() -> None:
    torch.manual_seed(0)
    net = SpikingClassifier(6, 5, 3)
    x = torch.rand(4, 6, generator=torch.Generator().manual_seed(1))
    spikes = latency_encode(x, 7)
    out = net(spikes)
    n_in, n_hid = int(spikes.sum()), int(out.hidden_spikes.sum())
    assert out.counts.sop == n_in * 5 + n_hid * 3
    assert out.counts.spikes == n_in + n_hid
    assert out.counts.state_updates == 7 * 4 * 5
    assert out.counts.samples == 4 and out.counts.mac == 0
    assert out.logits.shape == (4, 3)


def test_real_valued_input_is_priced_as_multiply_accumulates() -> None:
    """6 real inputs into 5 neurons over 4 steps: 4 x 6 x 5 = 120 MACs, no input spikes."""
    torch.manual_seed(0)
    net = SpikingClassifier(6, 5, 3)
    with torch.no_grad():
        net.fc_in.weight.mul_(6.0)
    x = torch.tensor([[0.3, 0.9, 0.0, 0.5, 0.7, 0.2]]).expand(4, 1, 6)
    out = net(x)
    n_hid = int(out.hidden_spikes.sum())
    assert n_hid > 0
    assert out.counts.mac == 120
    assert out.counts.sop == n_hid * 3 and out.counts.spikes == n_hid
    assert out.counts.energy_pj() == pytest.approx(120 * 4.6 + n_hid * 3 * 0.9)


def test_silent_input_costs_no_synaptic_operations() -> None:
    net = SpikingClassifier(6, 5, 3)
    with torch.no_grad():
        net.fc_in.bias.fill_(0.0)
    out = net(torch.zeros(5, 2, 6))
    assert out.counts.sop == 0 and out.counts.energy_pj() == 0.0


@pytest.mark.slow
def test_learns_digits_with_surrogate_gradients() -> None:
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    train, test = slice(0, 1000), slice(1000, 1400)
    s_train = rate_encode(x[train], 3, mode="regular")
    s_test = rate_encode(x[test], 3, mode="regular")
    torch.manual_seed(0)
    net = SpikingClassifier(64, 64, 10)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(8):
        for idx in torch.randperm(1000, generator=gen).split(50):
            loss = torch.nn.functional.cross_entropy(net(s_train[:, idx]).logits, y[train][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc = (net(s_test).logits.argmax(1) == y[test]).float().mean().item()
    assert acc > 0.85  # chance is 0.10


def test_wrong_shape_is_rejected() -> None:
    with pytest.raises(NeuralInputError, match=r"\[T, B, 6\]"):
        SpikingClassifier(6, 5, 3)(torch.zeros(2, 6))
