"""k-NN graphs, GCN normalisation and propagation against hand-computed matrices."""

from __future__ import annotations

import math

import pytest
import torch

from emily.cognition.neural.errors import NeuralConfigError, NeuralInputError
from emily.cognition.neural.graph import knn_graph, normalized_adjacency, propagate

PATH = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


def test_normalized_adjacency_of_a_path_hand_computed() -> None:
    # A + I has degrees [2, 3, 2]: Â[0,0] = 1/2, Â[0,1] = 1/√6, Â[1,1] = 1/3
    a = normalized_adjacency(PATH).to_dense()
    r6 = 1 / math.sqrt(6)
    expected = torch.tensor([[0.5, r6, 0.0], [r6, 1 / 3, r6], [0.0, r6, 0.5]])
    torch.testing.assert_close(a, expected)


def test_propagate_matches_dense_powers_and_counts_macs() -> None:
    a = normalized_adjacency(PATH)
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]])
    out, macs = propagate(x, a, 2)
    dense = a.to_dense()
    torch.testing.assert_close(out, dense @ dense @ x)
    assert macs == 2 * 7 * 2  # 7 stored entries of Â, 2 features, 2 hops
    same, zero = propagate(x, a, 0)
    assert torch.equal(same, x) and zero == 0


def test_knn_graph_is_symmetric_with_k_neighbours_and_cosine_weights() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 8, generator=gen)
    a = knn_graph(x, 4, chunk=7).to_dense()  # small chunks exercise the chunked path
    assert torch.equal(a, a.T)
    assert float(a.diagonal().abs().max()) == 0.0
    unit = torch.nn.functional.normalize(x, dim=1)
    sim = unit @ unit.T
    sim.fill_diagonal_(-2)
    for i in range(50):
        nbrs = torch.topk(sim[i], 4).indices
        for j in nbrs.tolist():
            assert a[i, j] == pytest.approx(max(sim[i, j].item(), 0.0), abs=1e-6)


def test_knn_graph_links_near_duplicates() -> None:
    x = torch.tensor([[1.0, 0.0], [0.99, 0.01], [0.0, 1.0], [0.01, 0.99]])
    a = knn_graph(x, 1).to_dense()
    assert a[0, 1] > 0.99 and a[2, 3] > 0.99
    assert a[0, 2] == 0 and a[1, 3] == 0


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(NeuralConfigError, match="k < N"):
        knn_graph(torch.zeros(3, 2), 3)
    with pytest.raises(NeuralInputError, match="NaN"):
        knn_graph(torch.tensor([[float("nan"), 0.0], [1.0, 0.0]]), 1)
    with pytest.raises(NeuralInputError, match="square"):
        normalized_adjacency(torch.zeros(2, 3))
    with pytest.raises(NeuralInputError, match="do not match"):
        propagate(torch.zeros(4, 2), normalized_adjacency(PATH), 1)
    with pytest.raises(NeuralConfigError, match="hops"):
        propagate(torch.zeros(3, 2), normalized_adjacency(PATH), -1)
