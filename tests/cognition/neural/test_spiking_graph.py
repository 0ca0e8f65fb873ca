"""Spiking graph layers: spreading activation on hand-built graphs, SpikingGCN counts and
learning on a k-NN graph of sklearn digits."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

from emily.cognition.neural.errors import NeuralConfigError, NeuralInputError
from emily.cognition.neural.graph import knn_graph, normalized_adjacency
from emily.cognition.neural.spiking_graph import SpikingGCN, spread_activation


def chain(n: int, w: float) -> torch.Tensor:
    a = torch.zeros(n, n)
    for i in range(n - 1):
        a[i, i + 1] = a[i + 1, i] = w
    return a


def test_activation_spreads_outward_in_order_of_distance() -> None:
    seed = torch.zeros(5)
    seed[0] = 1.5
    s = spread_activation(chain(5, 1.2), seed, steps=12)
    first = s.first_spike_ms.tolist()
    assert first[0] == 0.0
    assert first[0] < first[1] < first[2] < first[3] < first[4]
    assert s.ranking().tolist() == [0, 1, 2, 3, 4]


def test_weak_links_do_not_carry_activation() -> None:
    seed = torch.zeros(3)
    seed[0] = 1.5
    s = spread_activation(chain(3, 0.05), seed, steps=20)
    assert s.spike_counts[0] > 0 and s.spike_counts[1:].sum() == 0
    assert torch.isinf(s.first_spike_ms[1:]).all()


def test_synaptic_operations_are_spikes_times_out_degree() -> None:
    a = chain(4, 1.2)
    seed = torch.tensor([1.5, 0.0, 0.0, 0.0])
    s = spread_activation(a.to_sparse(), seed, steps=10)
    degree = (a > 0).sum(0).float()
    assert s.counts.sop == int((s.spike_counts * degree).sum())
    assert s.counts.spikes == int(s.spike_counts.sum())
    assert s.counts.state_updates == 40 and s.counts.mac == 0


def test_spread_rejects_bad_input() -> None:
    with pytest.raises(NeuralInputError, match="must be"):
        spread_activation(torch.zeros(3, 3), torch.zeros(4))
    with pytest.raises(NeuralInputError, match="≥ 0"):
        spread_activation(-chain(3, 1.0), torch.zeros(3))
    with pytest.raises(NeuralConfigError, match="steps"):
        spread_activation(chain(3, 1.0), torch.zeros(3), steps=0)


def test_spiking_gcn_counts_include_propagation_encoder_and_sops() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(20, 6, generator=gen)
    a = normalized_adjacency(knn_graph(x, 3))
    torch.manual_seed(0)
    model = SpikingGCN(6, 8, 3, hops=2, steps=4, encoding="regular")
    graph = model.prepare(x, a)
    assert graph.macs == 2 * a._nnz() * 6
    nodes = torch.arange(5)
    out = model(graph, nodes)
    assert out.logits.shape == (5, 3)
    enc = 6 * 4 * 5
    assert out.counts.mac == round(graph.macs * 5 / 20) + enc
    spikes_in = int(torch.floor(graph.features[nodes].clamp(0, 1) * 4 + 1e-9).sum())
    hidden = int(out.hidden_spikes.sum())
    assert out.counts.sop == spikes_in * 8 + hidden * 3


@pytest.mark.slow
def test_spiking_gcn_learns_digits_on_a_knn_graph() -> None:
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x[:600] / 16.0, dtype=torch.float32)
    y = torch.tensor(y[:600])
    a = normalized_adjacency(knn_graph(x, 8))
    torch.manual_seed(0)
    model = SpikingGCN(64, 64, 10, hops=2, steps=3, encoding="regular")
    graph = model.prepare(x, a)
    train, test = torch.arange(0, 400), torch.arange(400, 600)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        for idx in train[torch.randperm(400, generator=gen)].split(50):
            loss = torch.nn.functional.cross_entropy(model(graph, idx).logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc = (model(graph, test).logits.argmax(1) == y[test]).float().mean().item()
    assert acc > 0.85  # chance is 0.10


def test_signed_features_use_on_off_channels() -> None:
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(1))
    a = normalized_adjacency(knn_graph(x, 2))
    model = SpikingGCN(4, 5, 2, hops=1, steps=4, signed=True, scale=2.0, threshold=0.2)
    assert model.classifier.n_in == 8
    assert model(model.prepare(x, a)).logits.shape == (10, 2)
