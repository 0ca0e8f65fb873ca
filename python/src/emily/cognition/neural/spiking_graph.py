"""The project's spiking GNN: SpikingGCN node classification and spiking spreading
activation over a graph (such as the memory association graph).

:class:`SpikingGCN` follows Zhu et al., "Spiking Graph Convolutional Networks"
(IJCAI 2022): features are propagated once, ``X̃ = Â^K X`` (non-spiking, priced as
MACs), encoded as spikes, and classified by a spiking network (LIF hidden layer,
integrating readout), whose synaptic events are priced as ACs.

:func:`spread_activation` runs one LIF neuron per node: seed nodes get an input current,
and each spike of node ``j`` adds ``gain · A[i, j]`` to every neighbour ``i`` at the next
step. Nodes that fire early and often are the strongest associations of the seeds.
Each spike costs ``deg(j)`` synaptic operations.

Neither exists in snntorch (it has no graph layers), so both are written here on top
of its LIF neurons.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from emily.cognition.neural.encoders import Encoding, encode, encoder_macs, on_off
from emily.cognition.neural.energy import OpCounts
from emily.cognition.neural.errors import NeuralConfigError, NeuralInputError
from emily.cognition.neural.graph import propagate
from emily.cognition.neural.lif import LIF, LIFConfig
from emily.cognition.neural.snn import SpikingClassifier, SpikingOutput


@dataclass(frozen=True)
class Propagated:
    """Features after ``K`` hops, ``[N, F]``, and the MACs the propagation cost."""

    features: torch.Tensor
    macs: int


class SpikingGCN(nn.Module):
    """``Â^K X → encoder → F → H (LIF) → C`` node classifier.

    Parameters
    ----------
    n_features : input features ``F`` per node.
    n_hidden : LIF neurons ``H``.
    n_classes : classes ``C``.
    hops : propagation depth ``K``.
    steps : time steps ``T`` of the spike code (dt = ``lif.dt_ms``).
    encoding : ``"rate"`` or ``"latency"``.
    signed : split features into ON/OFF channels (for signed inputs such as embeddings).
    scale : ON/OFF scale (feature magnitude mapped to 1.0) when ``signed``.
    threshold : latency code: features below it stay silent.
    lif : neuron parameters.
    """

    def __init__(
        self,
        n_features: int,
        n_hidden: int,
        n_classes: int,
        *,
        hops: int = 2,
        steps: int = 8,
        encoding: Encoding = "latency",
        signed: bool = False,
        scale: float = 1.0,
        threshold: float = 0.01,
        lif: LIFConfig | None = None,
    ) -> None:
        super().__init__()
        if hops < 0 or steps < 1:
            raise NeuralConfigError(f"SpikingGCN needs hops ≥ 0 and steps ≥ 1, got {hops}, {steps}")
        self.hops, self.steps, self.encoding, self.signed = hops, steps, encoding, signed
        self.scale, self.threshold = scale, threshold
        width = 2 * n_features if signed else n_features
        self.classifier = SpikingClassifier(width, n_hidden, n_classes, lif)

    def prepare(self, x: torch.Tensor, adj_norm: torch.Tensor) -> Propagated:
        """Propagate features once per graph: ``[N, F] → Propagated([N, F], MACs)``."""
        feats, macs = propagate(x, adj_norm, self.hops)
        return Propagated(features=feats, macs=macs)

    def forward(
        self,
        graph: Propagated,
        nodes: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> SpikingOutput:
        """Classify ``nodes`` (all when ``None``).

        Parameters
        ----------
        graph : from :meth:`prepare`; features scaled to [0, 1], or signed with ``signed``.
        nodes : ``[B]`` long node indices to classify.
        generator : seeded generator for the rate code.

        Returns
        -------
        :class:`SpikingOutput` with logits ``[B, C]``; counts include this batch's share of
        the propagation MACs (``B/N`` of the whole graph's) and the encoder's MACs.
        """
        n = graph.features.shape[0]
        idx = torch.arange(n) if nodes is None else nodes
        batch = graph.features[idx]
        if self.signed:
            batch = on_off(batch, self.scale)
        spikes = encode(
            batch, self.steps, self.encoding, threshold=self.threshold, generator=generator
        )
        out = self.classifier(spikes)
        share = round(graph.macs * idx.numel() / n)
        enc = encoder_macs(batch.shape[1], self.steps, self.encoding) * idx.numel()
        counts = out.counts.merge(OpCounts(samples=idx.numel(), mac=share + enc))
        return SpikingOutput(out.logits, out.hidden_spikes, counts)


@dataclass(frozen=True)
class Spread:
    """Result of :func:`spread_activation`.

    Attributes
    ----------
    spike_counts : ``[N]`` spikes per node over the run.
    first_spike_ms : ``[N]`` time of each node's first spike (ms); ``inf`` if silent.
    counts : operations (spikes, SOP = Σ spikes × out-degree, state updates).
    """

    spike_counts: torch.Tensor
    first_spike_ms: torch.Tensor
    counts: OpCounts

    def ranking(self) -> torch.Tensor:
        """Nodes that fired, earliest first (ties: more spikes first); ``[M]`` long."""
        fired = torch.nonzero(self.spike_counts > 0).flatten()
        by_count = fired[torch.argsort(self.spike_counts[fired], descending=True, stable=True)]
        order = torch.argsort(self.first_spike_ms[by_count], stable=True)
        return by_count[order]


def spread_activation(
    adj: torch.Tensor,
    seed_current: torch.Tensor,
    steps: int = 20,
    *,
    gain: float = 1.0,
    lif: LIFConfig | None = None,
) -> Spread:
    """Spread spikes from seed nodes over a weighted graph.

    Parameters
    ----------
    adj : sparse or dense ``[N, N]`` non-negative weights; ``adj[i, j]`` couples j → i.
    seed_current : ``[N]`` input current per step (membrane units); zeros except seeds.
    steps : time steps to simulate (dt = ``lif.dt_ms``, 1 ms by default).
    gain : scale of the synaptic current a spike delivers.
    lif : neuron parameters (τ_mem = 10 ms, V_th = 1).

    Returns
    -------
    :class:`Spread`.
    """
    n = seed_current.shape[0]
    if seed_current.dim() != 1 or adj.shape != (n, n):
        raise NeuralInputError(
            f"adjacency {tuple(adj.shape)} and seed current {tuple(seed_current.shape)} "
            "must be [N, N] and [N]"
        )
    if steps < 1:
        raise NeuralConfigError(f"steps must be ≥ 1, got {steps}")
    a = adj.coalesce() if adj.is_sparse else adj.to_sparse().coalesce()
    if bool((a.values() < 0).any()):
        raise NeuralInputError("adjacency weights must be ≥ 0 (excitatory associations)")
    cfg = lif or LIFConfig()
    out_degree = torch.bincount(a.indices()[1], minlength=n)
    neurons = LIF(cfg)
    mem = torch.zeros(n)
    spikes = torch.zeros(n)
    counts = torch.zeros(n)
    first = torch.full((n,), float("inf"))
    with torch.no_grad():
        for t in range(steps):
            current = seed_current + gain * torch.sparse.mm(a, spikes.unsqueeze(1)).squeeze(1)
            spk, m = neurons(current.unsqueeze(0), mem)
            spikes, mem = spk[0], m[0]
            first = torch.where((spikes > 0) & torch.isinf(first), t * cfg.dt_ms, first)
            counts += spikes
    total = int(counts.sum().item())
    ops = OpCounts(
        samples=1,
        spikes=total,
        sop=int((counts * out_degree).sum().item()),
        state_updates=steps * n,
    )
    return Spread(spike_counts=counts, first_spike_ms=first, counts=ops)
