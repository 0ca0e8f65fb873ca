"""Spiking GNN (SpikingGCN) against a two-layer GCN on a k-NN graph: node classification.

All samples of a data set (sklearn digits; MiniLM-embedded reflex intents) become the
nodes of one cosine k-NN graph (k = 10, symmetrised). Nodes of the training split are
labelled; accuracy is measured on the test split's nodes (transductive, as in Kipf &
Welling 2017). Models, trained in the same run:

- GCN: ``Â · ReLU(Â X W₁) W₂`` with H hidden units, full-batch Adam.
- SpikingGCN (Zhu et al. 2022): ``X̃ = Â² X`` (precomputed), a spike code, then
  ``F → H (LIF, τ_mem = 10 ms, dt = 1 ms) → C`` with an integrating readout.

**Modelled** energy per classified node (Horowitz 45 nm fp32): GCN: its MACs over the
whole graph divided by the nodes; SpikingGCN: its share of the propagation MACs, the
encoder's MACs and SOPs priced as ACs. Wall time is measured per node on this machine.

    .venv/bin/python bench/neural_gnn_vs_gcn.py [--plot] [--datasets digits intents]
"""

from __future__ import annotations

import sys

import torch
from common import table
from neural_common import Dataset, accuracy, accuracy_energy_main, batches, digits, intents
from torch import nn

from emily.cognition.neural import (
    OpCounts,
    SpikingGCN,
    knn_graph,
    normalized_adjacency,
    timed,
)

K_NN, HIDDEN, GCN_EPOCHS, SNN_EPOCHS = 10, 128, 200, 60


class GCN(nn.Module):
    """Two-layer GCN (Kipf & Welling 2017) with dropout on the input of each layer."""

    def __init__(self, n_in: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.w1, self.w2 = nn.Linear(n_in, hidden), nn.Linear(hidden, classes)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        h = torch.relu(torch.sparse.mm(a, self.w1(self.drop(x))))
        return torch.sparse.mm(a, self.w2(self.drop(h)))


def gcn_counts(n: int, nnz: int, f: int, h: int, c: int) -> OpCounts:
    """MACs of one full-graph GCN forward: two dense transforms and two aggregations."""
    return OpCounts(samples=n, mac=n * f * h + nnz * h + n * h * c + nnz * c)


def graph_of(ds: Dataset) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Node features, labels, train and test node indices, over train + test samples."""
    x = torch.cat([ds.x_train, ds.x_test])
    y = torch.cat([ds.y_train, ds.y_test])
    n_tr = len(ds.y_train)
    return x, y, torch.arange(n_tr), torch.arange(n_tr, len(y))


def run(name: str, seed: int) -> dict[str, float]:
    ds = digits(seed) if name == "digits" else intents()
    x, y, tr, te = graph_of(ds)
    n, f = x.shape
    a = normalized_adjacency(knn_graph(x, K_NN))
    nnz = int(a._nnz())

    torch.manual_seed(seed)
    gcn = GCN(f, HIDDEN, ds.classes)
    opt = torch.optim.Adam(gcn.parameters(), lr=1e-2, weight_decay=5e-4)
    for _ in range(GCN_EPOCHS):
        loss = nn.functional.cross_entropy(gcn(x, a)[tr], y[tr])
        opt.zero_grad()
        loss.backward()
        opt.step()
    gcn.eval()
    with torch.no_grad(), timed() as g_t:
        g_acc = accuracy(gcn(x, a)[te], y[te])
    g_cnt = gcn_counts(n, nnz, f, HIDDEN, ds.classes)

    torch.manual_seed(seed)
    encoding = "latency" if ds.signed else "regular"
    steps = 8 if ds.signed else 3
    sgcn = SpikingGCN(
        f,
        HIDDEN,
        ds.classes,
        hops=2,
        steps=steps,
        encoding=encoding,
        signed=ds.signed,
        scale=2.0,
        threshold=0.3 if ds.signed else 0.01,
    )
    graph = sgcn.prepare(x, a)
    opt = torch.optim.Adam(sgcn.parameters(), lr=5e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, SNN_EPOCHS)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(SNN_EPOCHS):
        for idx in batches(len(tr), 64, gen):
            out = sgcn(graph, tr[idx])
            loss = nn.functional.cross_entropy(out.logits, y[tr[idx]])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    sgcn.eval()
    with torch.no_grad(), timed() as s_t:
        out = sgcn(sgcn.prepare(x, a), te)
    s_acc, s_cnt = accuracy(out.logits, y[te]), out.counts

    g_pj, s_pj = g_cnt.per_inference_pj(), s_cnt.per_inference_pj()
    rows = [
        [
            "GCN",
            f"{g_acc:.2f}",
            f"{g_pj:,.0f}",
            f"{g_cnt.per_inference_pj('int8'):,.0f}",
            "0",
            f"{g_cnt.mac / n:,.0f}",
            f"{g_t.wall_ms / len(te):.4f}",
        ],
        [
            "SpikingGCN",
            f"{s_acc:.2f}",
            f"{s_pj:,.0f}",
            f"{s_cnt.per_inference_pj('int8'):,.0f}",
            f"{s_cnt.sop / len(te):,.0f}",
            f"{s_cnt.mac / len(te):,.0f}",
            f"{s_t.wall_ms / len(te):.4f}",
        ],
    ]
    print(
        f"\n== {name}: {n} nodes, cosine {K_NN}-NN graph ({nnz:,} entries of Â with self-loops), "
        f"{len(tr)} labelled, {len(te)} test nodes, H={HIDDEN}; SpikingGCN: K=2 hops, "
        f"{encoding} code, T={steps}"
    )
    print(
        table(
            [
                "model",
                "acc %",
                "pJ/node fp32 (modelled)",
                "pJ/node int8 (modelled)",
                "SOP/node",
                "MAC/node",
                "wall ms/node (measured)",
            ],
            rows,
        )
    )
    print(
        f"SpikingGCN/GCN: accuracy {s_acc - g_acc:+.2f} points, modelled energy "
        f"{s_pj / g_pj:.3f}x, wall time {s_t.wall_ms / g_t.wall_ms:.2f}x "
        "(GCN time is one full-graph pass, shared by all nodes)"
    )
    return {"gcn_acc": g_acc, "snn_acc": s_acc, "gcn_pj": g_pj, "snn_pj": s_pj}


def main(argv: list[str] | None = None) -> int:
    pair = (("gcn", "GCN"), ("snn", "SpikingGCN"))
    return accuracy_energy_main(__doc__, run, pair, "node", "neural_gnn_vs_gcn.png", argv)


if __name__ == "__main__":
    sys.exit(main())
