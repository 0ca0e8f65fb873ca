"""The MoE layer: residual pass-through of dropped tokens, fp32 router, losses, training
on real data (sklearn digits) balances the experts."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

from emily.cognition.neural.errors import NeuralConfigError, NeuralInputError
from emily.cognition.neural.moe import MoE, MoEConfig, Router


def test_defaults_match_the_issue() -> None:
    c = MoEConfig(d_model=8, d_hidden=16)
    assert (c.capacity_factor, c.batch_priority, c.aux_loss_coef, c.z_loss_coef, c.k) == (
        1.25,
        True,
        0.01,
        1e-3,
        1,
    )


def test_dropped_tokens_pass_through_the_residual() -> None:
    torch.manual_seed(0)
    moe = MoE(MoEConfig(d_model=8, d_hidden=16, n_experts=2, capacity_factor=0.25))
    x = torch.randn(16, 8)
    out = moe(x)
    dropped = out.routing.dropped[:, 0]
    assert out.routing.capacity == 2 and int(dropped.sum()) == 12
    torch.testing.assert_close(out.y[dropped], x[dropped])
    kept = ~dropped
    assert not torch.allclose(out.y[kept], x[kept])
    assert out.drop_rate == pytest.approx(12 / 16)


def test_output_of_kept_token_is_residual_plus_gated_expert() -> None:
    torch.manual_seed(1)
    moe = MoE(MoEConfig(d_model=4, d_hidden=8, n_experts=3, capacity_factor=10.0))
    x = torch.randn(5, 4)
    out = moe(x)
    for t in range(5):
        e = int(out.routing.expert_index[t, 0])
        g = out.routing.combine_weights[t, 0]
        torch.testing.assert_close(out.y[t], x[t] + g * moe.experts[e](x[t : t + 1])[0])


def test_losses_are_weighted_and_differentiable() -> None:
    torch.manual_seed(2)
    moe = MoE(MoEConfig(d_model=4, d_hidden=8, n_experts=4))
    out = moe(torch.randn(32, 4))
    expected = 0.01 * out.aux_loss + 1e-3 * out.z_loss
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    assert moe.router.weight.grad is not None and moe.router.weight.grad.abs().sum() > 0


def test_router_runs_in_fp32_and_jitters_only_in_training() -> None:
    router = Router(4, 3, jitter_eps=0.5)
    x = torch.randn(6, 4).to(torch.bfloat16)
    router.eval()
    a, b = router(x), router(x)
    assert a.dtype == torch.float32 and torch.equal(a, b)
    router.train()
    assert not torch.equal(router(x), router(x))


def test_router_init_follows_switch_scale() -> None:
    # Switch: weights ~ N(0, s / d_model) with s = 0.1; d = 1000 gives std sqrt(1e-4) = 0.01.
    torch.manual_seed(3)
    assert MoEConfig(d_model=8, d_hidden=8).router_init_scale == 0.1
    w = Router(1000, 64).weight.detach()
    assert float(w.std()) == pytest.approx(0.01, rel=0.02)
    w1 = Router(1000, 64, init_scale=1.0).weight.detach()
    assert float(w1.std()) == pytest.approx(1000**-0.5, rel=0.02)
    # Scale 0: every logit is 0, so the router starts exactly uniform (1 / E = 0.25).
    moe = MoE(MoEConfig(d_model=6, d_hidden=8, n_experts=4, router_init_scale=0.0))
    probs = torch.softmax(moe.router(torch.randn(5, 6)), dim=-1)
    torch.testing.assert_close(probs, torch.full((5, 4), 0.25))


def test_expert_dropout_acts_only_in_training() -> None:
    torch.manual_seed(4)
    moe = MoE(MoEConfig(d_model=4, d_hidden=64, n_experts=2, expert_dropout=0.5))
    assert MoEConfig(d_model=4, d_hidden=4).expert_dropout == 0.0
    x = torch.randn(8, 4)
    hidden = torch.nn.functional.gelu(moe.experts[0].net[0](x))
    moe.train()
    dropped = moe.experts[0].net[2](hidden)
    # Inverted dropout: kept units are scaled by 1 / (1 − 0.5) = 2, the rest are 0.
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], 2 * hidden[kept])
    assert 0 < float(kept.float().mean()) < 1
    moe.eval()
    torch.testing.assert_close(moe(x).y, moe(x).y)
    assert torch.equal(moe.experts[0].net[2](hidden), hidden)


def train_on_digits(aux_coef: float) -> tuple[float, float, float]:
    """Train embed → MoE → head on sklearn digits; (load CV, aux loss, accuracy) on test."""
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    torch.manual_seed(0)
    embed = torch.nn.Linear(64, 32)
    moe = MoE(MoEConfig(d_model=32, d_hidden=32, n_experts=4, aux_loss_coef=aux_coef))
    head = torch.nn.Linear(32, 10)
    params = [*embed.parameters(), *moe.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        for idx in torch.randperm(1500, generator=gen).split(128):
            out = moe(embed(x[idx]))
            loss = torch.nn.functional.cross_entropy(head(out.y), y[idx]) + out.loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        test = moe(embed(x[1500:]))
        acc = (head(test.y).argmax(1) == y[1500:]).float().mean().item()
    return test.load_cv, test.aux_loss.item(), acc


@pytest.mark.slow
def test_aux_loss_training_on_digits_balances_the_experts() -> None:
    cv_off, aux_off, _ = train_on_digits(0.0)
    cv_on, aux_on, acc_on = train_on_digits(0.5)
    assert cv_on < cv_off and aux_on < aux_off
    assert cv_on < 0.3 and aux_on < 1.1  # 1.0 is a perfectly balanced router
    assert acc_on > 0.7  # chance is 0.10


def test_bad_config_and_input_are_rejected() -> None:
    with pytest.raises(NeuralConfigError, match="k must be"):
        MoEConfig(d_model=4, d_hidden=4, n_experts=2, k=3)
    with pytest.raises(NeuralConfigError, match="capacity_factor"):
        MoEConfig(d_model=4, d_hidden=4, capacity_factor=0.0)
    with pytest.raises(NeuralConfigError, match="router_init_scale"):
        MoEConfig(d_model=4, d_hidden=4, router_init_scale=-1.0)
    with pytest.raises(NeuralConfigError, match="expert_dropout"):
        MoEConfig(d_model=4, d_hidden=4, expert_dropout=1.0)
    with pytest.raises(NeuralConfigError, match="jitter"):
        MoEConfig(d_model=4, d_hidden=4, jitter_eps=1.5)
    with pytest.raises(NeuralInputError, match=r"\[T, 4\]"):
        MoE(MoEConfig(d_model=4, d_hidden=4))(torch.zeros(3, 5))
