"""The same components on a CUDA device give the CPU's results (skipped without CUDA)."""

from __future__ import annotations

import pytest
import torch

from emily.cognition.neural.encoders import latency_encode
from emily.cognition.neural.moe import MoE, MoEConfig
from emily.cognition.neural.snn import SpikingClassifier

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_spiking_classifier_matches_cpu_on_cuda() -> None:
    torch.manual_seed(0)
    net = SpikingClassifier(16, 32, 4)
    spikes = latency_encode(torch.rand(8, 16, generator=torch.Generator().manual_seed(0)), 6)
    cpu = net(spikes)
    gpu = net.cuda()(spikes.cuda())
    torch.testing.assert_close(gpu.logits.cpu(), cpu.logits, rtol=1e-4, atol=1e-5)
    assert gpu.counts == cpu.counts


def test_moe_router_stays_fp32_under_bf16_on_cuda() -> None:
    torch.manual_seed(0)
    moe = MoE(MoEConfig(d_model=16, d_hidden=32, n_experts=4)).cuda()
    x = torch.randn(64, 16, device="cuda")
    out = moe(x)
    assert moe.router(x.bfloat16()).dtype == torch.float32
    assert bool((out.routing.kept(4) <= out.routing.capacity).all())
