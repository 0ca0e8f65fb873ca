"""emily_neural_* metrics on a caller's registry, read back through prometheus_client."""

from __future__ import annotations

import pytest
import torch
from prometheus_client import CollectorRegistry, generate_latest

from emily.cognition.neural.energy import OpCounts, Timing, report
from emily.cognition.neural.metrics import NeuralMetrics
from emily.cognition.neural.moe import MoE, MoEConfig


def value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    got = reg.get_sample_value(name, labels)
    assert got is not None, f"{name}{labels} not exported"
    return got


def test_energy_metrics() -> None:
    reg = CollectorRegistry()
    m = NeuralMetrics(reg)
    r = report(OpCounts(samples=4, spikes=40, sop=1000, mac=100), Timing(8.0, 4.0))
    m.observe_energy("reflex", r)
    m.observe_energy("reflex", r)
    assert value(reg, "emily_neural_spikes_total", source="reflex") == 80
    assert value(reg, "emily_neural_synaptic_ops_total", source="reflex") == 2000
    assert value(reg, "emily_neural_macs_total", source="reflex") == 200
    assert value(reg, "emily_neural_inferences_total", source="reflex") == 8
    total = value(
        reg, "emily_neural_modelled_energy_picojoules_total", source="reflex", precision="fp32"
    )
    assert total == pytest.approx(2 * (1000 * 0.9 + 100 * 4.6))
    per = value(
        reg,
        "emily_neural_modelled_energy_picojoules_per_inference",
        source="reflex",
        precision="fp32",
    )
    assert per == pytest.approx(340.0)


def test_moe_metrics() -> None:
    reg = CollectorRegistry()
    m = NeuralMetrics(reg)
    torch.manual_seed(0)
    moe = MoE(MoEConfig(d_model=4, d_hidden=4, n_experts=2, capacity_factor=0.5))
    out = moe(torch.randn(20, 4))
    m.observe_moe("percepts", out)
    load = out.load.tolist()
    for e in range(2):
        assert (
            value(reg, "emily_neural_moe_expert_tokens_total", layer="percepts", expert=str(e))
            == load[e]
        )
        share = value(reg, "emily_neural_moe_expert_load_fraction", layer="percepts", expert=str(e))
        assert share == pytest.approx(load[e] / 20)
    assert value(reg, "emily_neural_moe_drop_rate", layer="percepts") == pytest.approx(
        out.drop_rate
    )
    assert value(reg, "emily_neural_moe_dropped_tokens_total", layer="percepts") == int(
        out.routing.dropped.sum()
    )
    assert value(reg, "emily_neural_moe_aux_loss", layer="percepts") == pytest.approx(
        out.aux_loss.item()
    )
    assert value(reg, "emily_neural_moe_z_loss", layer="percepts") == pytest.approx(
        out.z_loss.item()
    )
    assert value(reg, "emily_neural_moe_load_cv", layer="percepts") == pytest.approx(out.load_cv)


def test_every_metric_is_prefixed() -> None:
    reg = CollectorRegistry()
    NeuralMetrics(reg)
    names = [
        line.split()[2]
        for line in generate_latest(reg).decode().splitlines()
        if line.startswith("# TYPE")
    ]
    assert names and all(n.startswith("emily_neural_") for n in names)
