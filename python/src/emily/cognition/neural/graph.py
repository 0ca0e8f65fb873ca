"""Graphs for the spiking graph layer: k-nearest-neighbour graphs and GCN propagation.

- :func:`knn_graph`: symmetric cosine k-NN graph of row vectors (for example MiniLM
  episode embeddings, giving the memory association graph), as a sparse COO tensor.
- :func:`normalized_adjacency`: ``Â = D^{-1/2} (A + I) D^{-1/2}`` (Kipf & Welling 2017).
- :func:`propagate`: ``Â^K X`` and the MACs it costs (one per stored edge, self-loops
  included, per feature per hop).

Written with plain torch sparse ops: torch_geometric would add a compiled dependency
for three small functions.
"""

from __future__ import annotations

import torch

from emily.cognition.neural.errors import NeuralConfigError, NeuralInputError


def knn_graph(x: torch.Tensor, k: int, *, chunk: int = 1024) -> torch.Tensor:
    """Symmetric k-NN graph by cosine similarity.

    Parameters
    ----------
    x : ``[N, F]`` node features (rows need not be normalised).
    k : neighbours per node, ``1 ≤ k < N`` (self excluded).
    chunk : rows compared at a time, bounding memory to ``chunk × N`` similarities.

    Returns
    -------
    Sparse COO ``[N, N]`` float tensor, coalesced; ``A[i, j] = max(cos(x_i, x_j), 0)`` for
    each edge of ``i → j`` or ``j → i`` (made symmetric), zero diagonal.
    """
    if x.dim() != 2:
        raise NeuralInputError(f"knn_graph expects [N, F] features, got {tuple(x.shape)}")
    n = x.shape[0]
    if not 1 <= k < n:
        raise NeuralConfigError(f"knn_graph needs 1 ≤ k < N = {n}, got k = {k}")
    if not bool(torch.isfinite(x).all()):
        raise NeuralInputError("knn_graph features contain NaN or inf")
    unit = torch.nn.functional.normalize(x.float(), dim=1)
    rows, cols, vals = [], [], []
    for start in range(0, n, chunk):
        sim = unit[start : start + chunk] @ unit.T
        idx = torch.arange(start, min(start + chunk, n))
        sim[idx - start, idx] = -float("inf")
        top, nbr = torch.topk(sim, k, dim=1)
        rows.append(idx.repeat_interleave(k))
        cols.append(nbr.flatten())
        vals.append(top.flatten().clamp_min(0.0))
    r, c, v = torch.cat(rows), torch.cat(cols), torch.cat(vals)
    # Symmetrise: an edge found from either end is kept once (cosine is symmetric).
    keys, inverse = torch.unique(torch.cat([r * n + c, c * n + r]), return_inverse=True)
    weight = torch.zeros(keys.numel()).scatter_reduce(0, inverse, torch.cat([v, v]), "amax")
    index = torch.stack([keys // n, keys % n])
    return torch.sparse_coo_tensor(index, weight, (n, n), check_invariants=True).coalesce()


def normalized_adjacency(adj: torch.Tensor) -> torch.Tensor:
    """``D^{-1/2} (A + I) D^{-1/2}`` of a sparse or dense ``[N, N]`` adjacency (sparse COO)."""
    if adj.dim() != 2 or adj.shape[0] != adj.shape[1]:
        raise NeuralInputError(f"adjacency must be square [N, N], got {tuple(adj.shape)}")
    a = adj.to_sparse() if not adj.is_sparse else adj
    n = a.shape[0]
    eye = torch.sparse_coo_tensor(
        torch.arange(n).repeat(2, 1), torch.ones(n, dtype=a.dtype), (n, n), check_invariants=True
    )
    a = (a.coalesce() + eye).coalesce()
    deg = torch.sparse.sum(a, dim=1).to_dense()
    if bool((deg <= 0).any()):
        raise NeuralInputError("adjacency has negative weights making a degree ≤ 0")
    inv = deg.pow(-0.5)
    i, j = a.indices()
    return torch.sparse_coo_tensor(
        a.indices(), inv[i] * a.values() * inv[j], (n, n), check_invariants=True
    ).coalesce()


def propagate(x: torch.Tensor, adj_norm: torch.Tensor, hops: int) -> tuple[torch.Tensor, int]:
    """``Â^K X`` and its cost.

    Parameters
    ----------
    x : ``[N, F]`` node features.
    adj_norm : sparse ``[N, N]`` from :func:`normalized_adjacency`.
    hops : ``K ≥ 0``.

    Returns
    -------
    propagated : ``[N, F]``.
    macs : ``K · nnz(Â) · F`` multiply-accumulates for the whole graph.
    """
    if hops < 0:
        raise NeuralConfigError(f"hops must be ≥ 0, got {hops}")
    if x.dim() != 2 or x.shape[0] != adj_norm.shape[0]:
        raise NeuralInputError(
            f"features {tuple(x.shape)} do not match the {adj_norm.shape[0]}-node graph"
        )
    out = x
    for _ in range(hops):
        out = torch.sparse.mm(adj_norm, out)
    return out, hops * int(adj_norm._nnz()) * int(x.shape[1])
