"""The trained spiking reflex: quality on held-out data, firing, STDP, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emily.cognition.neural import STDP, STDPConfig
from emily.cognition.reflex import Reflex, ReflexModel
from emily.cognition.reflex import data as rdata
from emily.cognition.reflex.classifier import cache_path
from emily.cognition.reflex.train import TrainConfig


def test_held_out_scores_are_well_above_chance(fast_reflex: ReflexModel) -> None:
    scores = fast_reflex.evaluate()
    n_classes = len(fast_reflex.intents)
    assert scores.n_in_scope >= 90 and scores.n_oos >= 30
    assert scores.accuracy > 5 / n_classes  # chance is 1/24
    assert scores.precision >= 0.6
    assert scores.false_fire <= 0.2
    assert 0.3 <= scores.threshold <= 0.99


def test_clear_patterns_fire_and_out_of_scope_does_not(fast_reflex: ReflexModel) -> None:
    for text, intent in [("hello", "greeting"), ("stop", "stop"), ("thank you", "thanks")]:
        got = fast_reflex.decide(text)
        assert got.intent == intent and got.fired, got
        assert got.response and got.action
    calm = fast_reflex.decide("describe how photosynthesis works")
    assert not calm.fired and calm.response is None


def test_threshold_override_controls_firing(fast_reflex: ReflexModel) -> None:
    text = "hello"
    assert not fast_reflex.decide(text, threshold=1.01).fired
    assert fast_reflex.decide(text, threshold=0.0).fired


def test_save_and_load_give_the_same_decisions(fast_reflex: ReflexModel, tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    fast_reflex.save(path)
    back = ReflexModel.load(path)
    for text in ("who are you", "what is the date", "bake bread"):
        a, b = fast_reflex.decide(text), back.decide(text)
        assert (a.intent, a.fired) == (b.intent, b.fired)
        assert a.confidence == pytest.approx(b.confidence)


def test_stdp_adapts_only_the_active_inputs(tmp_path: Path, fast_reflex: ReflexModel) -> None:
    fast_reflex.save(tmp_path / "m.npz")
    model = ReflexModel.load(tmp_path / "m.npz")  # a private copy: STDP changes weights
    before = model.runtime.w_in.copy()
    lo, hi = before.min(), before.max()
    text = "good morning"
    change = model.adapt(text)
    after = model.runtime.w_in
    active = model.features.indices(text)  # type: ignore[attr-defined]
    inactive = np.setdiff1d(np.arange(after.shape[1]), active)
    assert change > 0
    np.testing.assert_array_equal(after[:, inactive], before[:, inactive])
    assert after.min() >= lo - 1e-6 and after.max() <= hi + 1e-6
    # the runtime uses the adapted weights at once
    assert not np.allclose(model.runtime.w_in_t[active], before.T[active])


def test_stdp_keeps_held_out_accuracy(tmp_path: Path, fast_reflex: ReflexModel) -> None:
    fast_reflex.save(tmp_path / "m.npz")
    model = ReflexModel.load(tmp_path / "m.npz")
    base = model.evaluate()
    for r in rdata.load_intents():
        if r.split == "train" and r.intent != rdata.OOS and model.decide(r.text).fired:
            model.adapt(r.text)
    after = model.evaluate()
    # measured: neutral at this rate (a_plus = 5e-4); a drift of 2+ points is a regression
    assert after.accuracy >= base.accuracy - 0.03


@pytest.mark.slow
def test_minilm_stage_beats_ngrams_on_held_out_accuracy(cascade: Reflex) -> None:
    assert cascade.deep is not None
    fast, deep = cascade.fast.evaluate(), cascade.deep.evaluate()
    assert deep.accuracy > fast.accuracy
    assert deep.precision >= 0.8


@pytest.mark.slow
def test_cascade_uses_the_embedding_when_the_fast_stage_is_unsure(cascade: Reflex) -> None:
    text = "could you tell me who put you together"
    fast = cascade.decide_fast(text)
    emb = cascade.embed(text)
    assert emb is not None and emb.shape == (384,)
    deep = cascade.decide_deep(text, emb)
    assert deep is not None
    merged = Reflex.merge(fast, deep)
    if fast.fired:
        assert merged is fast
    else:
        assert merged.intent == deep.intent
        assert merged.latency_ms == pytest.approx(fast.latency_ms + deep.latency_ms)


def test_stdp_on_the_active_columns_equals_stdp_on_the_whole_matrix(
    tmp_path: Path, fast_reflex: ReflexModel
) -> None:
    """Reference: the STDP rule run on the full ``[H, F]`` input weights."""
    fast_reflex.save(tmp_path / "m.npz")
    model = ReflexModel.load(tmp_path / "m.npz")
    rt = model.runtime
    for text in ("good morning", "thank you so much", "what time is it"):
        full = torch.from_numpy(rt.w_in.copy())
        lo, hi = float(full.min()), float(full.max())
        x = model.features.dense([text])[0]
        _, spikes = rt.run(rt.current_dense(x[None, :])[0])
        rule = STDP(full, STDPConfig(a_plus=5e-4, a_minus=5.25e-4, w_min=lo, w_max=hi))
        delta = rule.run(
            torch.from_numpy(np.repeat(x[None, :], rt.steps, axis=0)), torch.from_numpy(spikes)
        )
        change = model.adapt(text)
        active = np.flatnonzero(x)
        np.testing.assert_allclose(rt.w_in, full.numpy(), rtol=0, atol=1e-6)
        np.testing.assert_array_equal(rt.w_in_t, rt.w_in.T)
        assert change == pytest.approx(float(delta[:, active].abs().mean()), rel=1e-6)


def test_the_cache_key_names_the_embedding_precision(tmp_path: Path) -> None:
    class Tagged:
        def __init__(self, tag: str) -> None:
            self.cache_tag = tag

        def dense(self, texts: list[str]) -> np.ndarray:
            return np.zeros((len(texts), 4), dtype=np.float32)

    cfg = TrainConfig()
    bf16 = cache_path(tmp_path, cfg, Tagged("bfloat16"), "minilm")
    fp32 = cache_path(tmp_path, cfg, Tagged("float32"), "minilm")
    assert bf16 != fp32 and "minilm-bfloat16-" in bf16.name and "minilm-float32-" in fp32.name
    assert cache_path(tmp_path, cfg, None, "ngrams").name.startswith("reflex-ngrams-")
