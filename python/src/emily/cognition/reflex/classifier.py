"""The reflex model: features, the spiking network, its calibrated threshold and STDP.

:meth:`ReflexModel.decide` never touches the bus, memory or the LLM: it hashes the
text, runs the spiking network for ``T`` steps and fires only above the threshold.
:meth:`ReflexModel.adapt` applies STDP (the rule of :mod:`emily.cognition.neural`) to the input
weights after a confident decision, off the critical path.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from emily.cognition.errors import ReflexDataError
from emily.cognition.neural import OpCounts, STDPConfig
from emily.cognition.reflex import data as rdata
from emily.cognition.reflex.features import HashedNgrams
from emily.cognition.reflex.runtime import F32, SpikingRuntime, softmax_rows, stdp
from emily.cognition.reflex.train import (
    TrainConfig,
    calibrate,
    calibration_split,
    confidences,
    fit,
)


class Features(Protocol):
    """Anything that turns texts into a feature matrix ``[B, F]``."""

    def dense(self, texts: list[str]) -> F32: ...


@dataclass(frozen=True)
class ReflexResult:
    """One reflex decision.

    Attributes
    ----------
    intent : best intent; confidence : its softmax probability in [0, 1].
    fired : ``confidence >= threshold``; only then are ``action``/``response`` set.
    latency_ms : features plus network, in ms; cpu_ms : this thread's CPU time for it.
    spikes : hidden spikes emitted.
    counts : the decision's operations (for the modelled energy of the live reflex).
    """

    intent: str
    confidence: float
    threshold: float
    fired: bool
    action: str | None
    response: str | None
    latency_ms: float
    spikes: int
    counts: OpCounts = field(default_factory=OpCounts)
    cpu_ms: float = 0.0


@dataclass(frozen=True)
class ReflexScores:
    """Held-out quality of a reflex model (fractions in [0, 1]).

    precision : correct fires / fires on in-scope held-out utterances.
    recall : correct fires / in-scope held-out utterances.
    false_fire : fires / out-of-scope held-out utterances.
    accuracy : argmax accuracy on in-scope held-out utterances, ignoring the threshold.
    """

    precision: float
    recall: float
    false_fire: float
    accuracy: float
    threshold: float
    n_in_scope: int
    n_oos: int


class ReflexModel:
    """A trained, calibrated spiking reflex (see the module docstring)."""

    def __init__(
        self,
        runtime: SpikingRuntime,
        intents: list[str],
        threshold: float,
        features: Features | None = None,
    ) -> None:
        self.runtime = runtime
        self.intents = intents
        self.threshold = threshold
        self.features: Features = features if features is not None else HashedNgrams()
        self.responses = rdata.load_responses()
        missing = sorted(set(intents) - set(self.responses) - {rdata.OOS})
        if missing:
            raise ReflexDataError(f"data/responses.json has no response for intents {missing}")
        self._lock = threading.Lock()  # weights: decisions read, STDP writes back
        self._adapt_lock = threading.Lock()

    @classmethod
    def build(
        cls,
        cfg: TrainConfig | None = None,
        features: Features | None = None,
        rows: list[rdata.Utterance] | None = None,
    ) -> ReflexModel:
        """Train on the ``train`` split and calibrate the threshold (seconds on a CPU)."""
        cfg = cfg or TrainConfig()
        feats: Features = features if features is not None else HashedNgrams()
        rows = rows if rows is not None else rdata.load_intents()
        train = [r for r in rows if r.split == "train"]
        intents = sorted({r.intent for r in train})
        if rdata.OOS not in intents:
            raise ReflexDataError("the training split needs out-of-scope ('oos') utterances")
        calib = calibration_split([r.intent for r in train], cfg.seed)

        def xy(part: list[rdata.Utterance]) -> tuple[F32, np.ndarray]:
            y = np.array([intents.index(r.intent) for r in part], dtype=np.int64)
            return feats.dense([r.text for r in part]), y

        x, y = xy([r for r, c in zip(train, calib, strict=True) if not c])
        runtime = fit(x, y, len(intents), cfg)
        xc, yc = xy([r for r, c in zip(train, calib, strict=True) if c])
        pred, conf = confidences(runtime, xc)
        threshold = calibrate(pred, conf, yc, intents.index(rdata.OOS), cfg)
        return cls(runtime, intents, threshold, feats)

    def _current(self, text: str) -> tuple[F32, int | None]:
        """Input current ``[H]`` and the number of spiking inputs (``None``: real-valued)."""
        if isinstance(self.features, HashedNgrams):
            idx = self.features.indices(text)
            return self.runtime.current_sparse(idx), len(idx)
        return self._current_dense(self.features.dense([text])[0])

    def _current_dense(self, x: F32) -> tuple[F32, int | None]:
        binary = bool(np.isin(x, (0.0, 1.0)).all())
        current: F32 = self.runtime.current_dense(x[None, :])[0]
        return current, (int(x.sum()) if binary else None)

    def decide(
        self, text: str, threshold: float | None = None, features: F32 | None = None
    ) -> ReflexResult:
        """Classify ``text`` and fire when confident and not out of scope.

        Parameters
        ----------
        threshold : overrides the calibrated threshold (allostasis modulates it).
        features : precomputed features ``[F]`` (e.g. from an embedding computed once
            for both the reflex and memory recall); computed from ``text`` when ``None``.
        """
        t0, c0 = time.perf_counter(), time.thread_time()
        bar = self.threshold if threshold is None else threshold
        with self._lock:
            current, active = (
                self._current(text) if features is None else self._current_dense(features)
            )
            logits, spikes = self.runtime.run(current)
        counts = self.runtime.counts(spikes, active)
        p = softmax_rows(logits)
        k = int(p.argmax())
        conf = float(p[k])
        intent = self.intents[k]
        fired = conf >= bar and intent != rdata.OOS
        canned = self.responses[intent] if fired else None
        return ReflexResult(
            intent=intent,
            confidence=conf,
            threshold=bar,
            fired=fired,
            action=canned.action if canned else None,
            response=canned.render() if canned else None,
            latency_ms=(time.perf_counter() - t0) * 1e3,
            spikes=int(spikes.sum()),
            counts=counts,
            cpu_ms=(time.thread_time() - c0) * 1e3,
        )

    def adapt(self, text: str, config: STDPConfig | None = None) -> float:
        """Apply STDP between the input and hidden layers for ``text``.

        An input that never spikes changes no weight (both STDP terms are products with
        its spikes or its trace), so the rule runs on the active input columns only
        (``[H, A]``, about 100 of 2048) and gives the same weights as on the whole
        matrix. Decisions wait only for the write-back, not for the rule.

        Returns
        -------
        Mean absolute weight change over the touched input columns.
        """
        x = self.features.dense([text])[0]
        active = np.flatnonzero(x)
        if not active.size:
            return 0.0
        with self._adapt_lock:  # one writer at a time; readers are not blocked
            rt = self.runtime
            lo, hi = float(rt.w_in.min()), float(rt.w_in.max())
            cfg = config or STDPConfig(a_plus=5e-4, a_minus=5.25e-4, w_min=lo, w_max=hi)
            _, spikes = rt.run(rt.current_dense(x[None, :])[0])
            w = rt.w_in[:, active]  # a copy: fancy indexing
            delta = stdp(
                w,
                np.repeat(x[None, active], rt.steps, axis=0),
                spikes,
                a_plus=cfg.a_plus,
                a_minus=cfg.a_minus,
                decay_plus=math.exp(-cfg.dt_ms / cfg.tau_plus_ms),
                decay_minus=math.exp(-cfg.dt_ms / cfg.tau_minus_ms),
                w_min=cfg.w_min,
                w_max=cfg.w_max,
            )
            with self._lock:
                rt.w_in[:, active] = w
                rt.w_in_t[active] = w.T
        return float(np.abs(delta).mean())

    def evaluate(self, rows: list[rdata.Utterance] | None = None) -> ReflexScores:
        """Precision, recall and false-fire rate on the ``heldout`` split."""
        rows = rows if rows is not None else rdata.load_intents()
        held = [r for r in rows if r.split == "heldout"]
        ins = [r for r in held if r.intent != rdata.OOS]
        oos = [r for r in held if r.intent == rdata.OOS]
        res_in = [self.decide(r.text) for r in ins]
        res_oos = [self.decide(r.text) for r in oos]
        fires = [(r, d) for r, d in zip(ins, res_in, strict=True) if d.fired]
        correct = sum(1 for r, d in fires if d.intent == r.intent)
        return ReflexScores(
            precision=correct / len(fires) if fires else 0.0,
            recall=correct / len(ins) if ins else 0.0,
            false_fire=sum(d.fired for d in res_oos) / len(oos) if oos else 0.0,
            accuracy=sum(d.intent == r.intent for r, d in zip(ins, res_in, strict=True))
            / max(len(ins), 1),
            threshold=self.threshold,
            n_in_scope=len(ins),
            n_oos=len(oos),
        )

    def save(self, path: Path) -> None:
        """Write the weights, intents and threshold to ``path`` (``.npz``)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = dict(self.runtime.to_arrays())
        arrays.update(intents=np.array(self.intents), threshold=np.array(self.threshold))
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, features: Features | None = None) -> ReflexModel:
        """Read a model written by :meth:`save`; ``features`` must match the training's."""
        with np.load(path) as z:
            arrays = {k: z[k] for k in ("w_in", "b_in", "w_out", "b_out", "consts")}
            intents = [str(i) for i in z["intents"]]
            threshold = float(z["threshold"])
        return cls(SpikingRuntime.from_arrays(arrays), intents, threshold, features)

    @classmethod
    def load_or_build(
        cls,
        cache_dir: Path,
        cfg: TrainConfig | None = None,
        features: Features | None = None,
        name: str = "ngrams",
    ) -> ReflexModel:
        """Load the cached model for this data set, config and features, else train it
        (the file is :func:`cache_path`)."""
        path = cache_path(cache_dir, cfg or TrainConfig(), features, name)
        if path.exists():
            return cls.load(path, features)
        model = cls.build(cfg or TrainConfig(), features)
        model.save(path)
        return model


def cache_path(cache_dir: Path, cfg: TrainConfig, features: Features | None, name: str) -> Path:
    """Where a trained reflex is cached: keyed by the data set's fingerprint, ``cfg``,
    ``name`` and the features' ``cache_tag`` when they have one (MiniLM: the embedding
    precision), so features that changed never load weights trained on others."""
    digest = hashlib.sha256(repr(cfg).encode()).hexdigest()[:8]
    tag = getattr(features, "cache_tag", None)
    label = f"{name}-{tag}" if tag else name
    return cache_dir / f"reflex-{label}-{rdata.fingerprint(rdata.load_intents())}-{digest}.npz"
