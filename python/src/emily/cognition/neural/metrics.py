"""Prometheus metrics of the neural components, on a registry the caller passes in.

Spiking components: spikes, synaptic operations, MACs and **modelled** energy (pJ),
labelled by ``source``. MoE layers: tokens per expert (the expert-load histogram, one
series per expert), the latest load fraction and CV, drop rate, and aux and z losses,
labelled by ``layer``. Every name starts with ``emily_neural_``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from emily.cognition.neural.energy import EnergyReport
from emily.cognition.neural.moe import MoEOutput


class NeuralMetrics:
    """Collectors registered on ``registry`` (one per process or test)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.spikes = Counter(
            "emily_neural_spikes", "Spikes emitted", ["source"], registry=registry
        )
        self.sop = Counter(
            "emily_neural_synaptic_ops",
            "Synaptic operations (spikes x fan-out)",
            ["source"],
            registry=registry,
        )
        self.macs = Counter(
            "emily_neural_macs",
            "MACs of non-spiking layers and encoders",
            ["source"],
            registry=registry,
        )
        self.inferences = Counter(
            "emily_neural_inferences", "Inferences counted", ["source"], registry=registry
        )
        self.energy = Counter(
            "emily_neural_modelled_energy_picojoules",
            "Modelled energy (Horowitz 45 nm), not measured",
            ["source", "precision"],
            registry=registry,
        )
        self.energy_per_inference = Gauge(
            "emily_neural_modelled_energy_picojoules_per_inference",
            "Modelled energy per inference of the latest batch (pJ), not measured",
            ["source", "precision"],
            registry=registry,
        )
        self.expert_tokens = Counter(
            "emily_neural_moe_expert_tokens",
            "Token assignments requested per expert",
            ["layer", "expert"],
            registry=registry,
        )
        self.expert_load = Gauge(
            "emily_neural_moe_expert_load_fraction",
            "Share of the latest batch's assignments per expert",
            ["layer", "expert"],
            registry=registry,
        )
        self.load_cv = Gauge(
            "emily_neural_moe_load_cv",
            "Coefficient of variation of the expert load",
            ["layer"],
            registry=registry,
        )
        self.dropped = Counter(
            "emily_neural_moe_dropped_tokens",
            "Assignments dropped over capacity",
            ["layer"],
            registry=registry,
        )
        self.drop_rate = Gauge(
            "emily_neural_moe_drop_rate",
            "Drop rate of the latest batch",
            ["layer"],
            registry=registry,
        )
        self.aux_loss = Gauge(
            "emily_neural_moe_aux_loss",
            "Load-balancing loss N*sum(f*P) of the latest batch",
            ["layer"],
            registry=registry,
        )
        self.z_loss = Gauge(
            "emily_neural_moe_z_loss",
            "Router z-loss of the latest batch",
            ["layer"],
            registry=registry,
        )

    def observe_energy(self, source: str, report: EnergyReport) -> None:
        """Record a batch's counts and modelled energy under ``source``."""
        c = report.counts
        self.spikes.labels(source).inc(c.spikes)
        self.sop.labels(source).inc(c.sop)
        self.macs.labels(source).inc(c.mac)
        self.inferences.labels(source).inc(c.samples)
        self.energy.labels(source, report.precision).inc(report.energy_pj * c.samples)
        self.energy_per_inference.labels(source, report.precision).set(report.energy_pj)

    def observe_moe(self, layer: str, out: MoEOutput) -> None:
        """Record a batch's expert load, drop rate and losses under ``layer``."""
        load = out.load.tolist()
        total = max(sum(load), 1)
        for expert, n in enumerate(load):
            self.expert_tokens.labels(layer, str(expert)).inc(n)
            self.expert_load.labels(layer, str(expert)).set(n / total)
        self.load_cv.labels(layer).set(out.load_cv)
        self.dropped.labels(layer).inc(int(out.routing.dropped.sum().item()))
        self.drop_rate.labels(layer).set(out.drop_rate)
        self.aux_loss.labels(layer).set(float(out.aux_loss.detach().item()))
        self.z_loss.labels(layer).set(float(out.z_loss.detach().item()))
