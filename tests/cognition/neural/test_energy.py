"""Modelled energy: Horowitz presets, SOP and MAC counting against hand computation."""

from __future__ import annotations

import pytest
import torch

from emily.cognition.neural.energy import (
    ENERGY_LABEL,
    PRESETS,
    OpCounts,
    Timing,
    input_layer_counts,
    linear_macs,
    mlp_counts,
    preset,
    report,
    sop,
    timed,
)
from emily.cognition.neural.errors import NeuralConfigError


def test_presets_are_horowitz_45nm() -> None:
    got = {k: (p.e_ac_pj, p.e_mac_pj) for k, p in PRESETS.items()}
    assert got == {"fp32": (0.9, 4.6), "fp16": (0.4, 1.5), "int8": (0.03, 0.23)}
    with pytest.raises(NeuralConfigError, match="fp32"):
        preset("bf16")


def test_sop_is_spikes_times_fan_out() -> None:
    spikes = torch.tensor([[[1.0, 0.0, 1.0]], [[0.0, 0.0, 1.0]]])  # 3 spikes
    assert sop(spikes, 10) == 30


def test_energy_hand_computed() -> None:
    c = OpCounts(samples=4, spikes=50, sop=1000, mac=100)
    assert c.energy_pj("fp32") == pytest.approx(1000 * 0.9 + 100 * 4.6)  # 1360 pJ
    assert c.energy_pj("int8") == pytest.approx(30 + 23)
    assert c.per_inference_pj("fp32") == pytest.approx(340.0)
    assert OpCounts().per_inference_pj() == 0.0


def test_input_layer_counts_spikes_as_accumulates_and_currents_as_macs() -> None:
    spikes = torch.tensor([[[1.0, 0.0, 1.0]], [[0.0, 0.0, 1.0]]])  # [T=2, B=1, F=3]
    assert input_layer_counts(spikes, 4) == OpCounts(spikes=3, sop=12)
    assert input_layer_counts(spikes * 0.5, 4) == OpCounts(mac=2 * 3 * 4)


def test_mlp_macs_hand_computed() -> None:
    assert linear_macs(64, 128) == 8192
    c = mlp_counts([64, 128, 10], samples=3)
    assert c.mac == 3 * (64 * 128 + 128 * 10)
    assert c.per_inference_pj() == pytest.approx((8192 + 1280) * 4.6)


def test_counts_add_and_merge() -> None:
    a = OpCounts(2, 10, 100, 5, 7)
    b = OpCounts(3, 1, 1, 1, 1)
    assert a + b == OpCounts(5, 11, 101, 6, 8)
    assert a.merge(OpCounts(samples=2, mac=4)) == OpCounts(2, 10, 100, 9, 7)


def test_report_is_labelled_modelled_and_carries_measured_time() -> None:
    with timed() as t:
        sum(range(10_000))
    assert t.wall_ms > 0 and t.cpu_ms >= 0
    r = report(OpCounts(samples=2, sop=10, mac=2), Timing(wall_ms=4.0, cpu_ms=2.0), "fp16")
    assert r.label == ENERGY_LABEL == "modelled"
    assert r.energy_pj == pytest.approx((10 * 0.4 + 2 * 1.5) / 2)
    assert (r.wall_ms, r.cpu_ms, r.precision) == (2.0, 1.0, "fp16")
    assert "modelled" in str(r) and "measured" in str(r)
