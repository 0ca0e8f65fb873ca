"""The NumPy reflex runtime against the torch modules it re-implements."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emily.cognition.neural import STDP, LIFConfig, SpikingClassifier, STDPConfig
from emily.cognition.reflex.runtime import SpikingRuntime, stdp


def test_run_matches_the_torch_spiking_classifier() -> None:
    torch.manual_seed(0)
    lif = LIFConfig()
    net = SpikingClassifier(64, 32, 5, lif)
    with torch.no_grad():  # inputs strong enough that many neurons spike and reset
        net.fc_in.weight.mul_(8.0)
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    rt = SpikingRuntime(
        sd["fc_in.weight"],
        sd["fc_in.bias"],
        sd["fc_out.weight"],
        sd["fc_out.bias"],
        beta=lif.beta,
        threshold=lif.threshold,
        steps=8,
    )
    x = (np.random.default_rng(1).random((6, 64)) < 0.3).astype(np.float32)
    with torch.no_grad():
        out = net(torch.from_numpy(x).unsqueeze(0).expand(8, -1, -1))
    logits, spikes = rt.run(rt.current_dense(x))
    assert spikes.sum() > 0
    np.testing.assert_array_equal(spikes, out.hidden_spikes.numpy())
    np.testing.assert_allclose(logits, out.logits.numpy(), atol=1e-5)


@pytest.mark.parametrize("binary", [True, False])
def test_decision_counts_match_the_torch_classifiers(binary: bool) -> None:
    """Spiking input costs accumulates, real-valued input (MiniLM's) costs T x F x H MACs."""
    torch.manual_seed(0)
    lif = LIFConfig()
    net = SpikingClassifier(64, 32, 5, lif)
    with torch.no_grad():
        net.fc_in.weight.mul_(8.0)
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    rt = SpikingRuntime(
        sd["fc_in.weight"], sd["fc_in.bias"], sd["fc_out.weight"], sd["fc_out.bias"],
        beta=lif.beta, threshold=lif.threshold, steps=8,
    )  # fmt: skip
    rng = np.random.default_rng(3)
    x = (rng.random(64) < 0.3).astype(np.float32) if binary else rng.random(64).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)[None, None, :].expand(8, 1, -1)).counts
    _, spikes = rt.run(rt.current_dense(x[None, :])[0])
    got = rt.counts(spikes, int(x.sum()) if binary else None)
    assert got == want
    assert (got.mac == 8 * 64 * 32) != binary


@pytest.mark.parametrize("uniform", [True, False])
def test_stdp_matches_the_torch_rule(uniform: bool) -> None:
    """Both branches: inputs that spike alike at each step (the reflex's case) and not."""
    rng = np.random.default_rng(2)
    steps, n_post, n_pre = 8, 16, 10
    w = rng.uniform(-0.5, 0.5, (n_post, n_pre)).astype(np.float32)
    post = (rng.random((steps, n_post)) < 0.4).astype(np.float32)
    if uniform:
        pre = np.repeat((rng.random((steps, 1)) < 0.7).astype(np.float32), n_pre, axis=1)
    else:
        pre = (rng.random((steps, n_pre)) < 0.5).astype(np.float32)
    cfg = STDPConfig(a_plus=0.05, a_minus=0.0525, w_min=-0.45, w_max=0.45)  # clamps bind
    ref = torch.from_numpy(w.copy())
    want = STDP(ref, cfg).run(torch.from_numpy(pre), torch.from_numpy(post))
    got = stdp(
        w,
        pre,
        post,
        a_plus=cfg.a_plus,
        a_minus=cfg.a_minus,
        decay_plus=math.exp(-cfg.dt_ms / cfg.tau_plus_ms),
        decay_minus=math.exp(-cfg.dt_ms / cfg.tau_minus_ms),
        w_min=cfg.w_min,
        w_max=cfg.w_max,
    )
    assert np.abs(got).max() > 0
    np.testing.assert_allclose(w, ref.numpy(), atol=1e-6)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-6)
