"""The trained spiking network run with NumPy for sub-millisecond decisions.

It computes exactly what :class:`emily.cognition.neural.SpikingClassifier` computes
(LIF with subtractive reset, as snntorch's ``Leaky``), with the input held constant
over ``T`` steps, so no PyTorch dispatch sits on the reflex's critical path. The test
``tests/cognition/reflex/test_runtime.py`` checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from emily.cognition.neural.energy import OpCounts

F32 = NDArray[np.float32]


@dataclass
class SpikingRuntime:
    """Weights of ``F -> H (LIF) -> C`` and the LIF constants.

    Attributes
    ----------
    w_in : ``[H, F]``; b_in : ``[H]``; w_out : ``[C, H]``; b_out : ``[C]``.
    beta : membrane decay per step (``exp(-dt/tau)``); threshold : firing threshold.
    steps : time steps ``T`` per decision (1 ms each).
    """

    w_in: F32
    b_in: F32
    w_out: F32
    b_out: F32
    beta: float
    threshold: float
    steps: int

    def __post_init__(self) -> None:
        self.w_in_t: F32 = np.ascontiguousarray(self.w_in.T)

    def refresh(self) -> None:
        """Re-derive the transposed input weights after ``w_in`` changed (STDP)."""
        self.w_in_t = np.ascontiguousarray(self.w_in.T)

    def current_sparse(self, idx: NDArray[np.int64]) -> F32:
        """Input current ``[H]`` of a binary input whose active features are ``idx``."""
        out: F32 = self.w_in_t[idx].sum(axis=0) + self.b_in
        return out

    def current_dense(self, x: F32) -> F32:
        """Input current ``[B, H]`` of dense inputs ``x`` ``[B, F]``."""
        out: F32 = x @ self.w_in_t + self.b_in
        return out

    def run(self, current: F32) -> tuple[F32, F32]:
        """Run the LIF layer for ``T`` steps on a constant current ``[..., H]``.

        Returns
        -------
        logits : ``[..., C]`` (time-averaged readout); spikes : ``[T, ..., H]``.
        """
        mem = np.zeros_like(current)
        spikes = np.empty((self.steps, *current.shape), dtype=np.float32)
        thr = np.float32(self.threshold)
        beta = np.float32(self.beta)
        reset = np.zeros_like(current)  # spikes of the previous step: (mem > thr) before it
        for t in range(self.steps):
            mem *= beta
            mem += current
            mem -= reset * thr
            np.greater(mem, thr, out=spikes[t])
            reset = spikes[t]
        rate = spikes.mean(axis=0)
        logits: F32 = rate @ self.w_out.T + self.b_out
        return logits, spikes

    def counts(self, spikes: F32, active: int | None) -> OpCounts:
        """Operations of one decision, as :class:`~emily.cognition.neural.SpikingClassifier`
        counts them for the same input held over ``T`` steps.

        Parameters
        ----------
        spikes : hidden spikes ``[T, H]`` of the decision.
        active : inputs that spike (binary input, e.g. hashed n-grams), or ``None`` for
            real-valued input (MiniLM features), whose layer costs ``T · F · H`` MACs.
        """
        n_hidden, n_in = self.w_in.shape
        hidden = int(spikes.sum())
        out = hidden * self.w_out.shape[0]
        base = OpCounts(samples=1, spikes=hidden, sop=out, state_updates=self.steps * n_hidden)
        if active is None:
            return base + OpCounts(mac=self.steps * n_in * n_hidden)
        fired = active * self.steps
        return base + OpCounts(spikes=fired, sop=fired * n_hidden)

    def to_arrays(self) -> dict[str, NDArray[np.float32]]:
        """Arrays to save with ``np.savez``."""
        consts = np.array([self.beta, self.threshold, self.steps], dtype=np.float32)
        return {
            "w_in": self.w_in,
            "b_in": self.b_in,
            "w_out": self.w_out,
            "b_out": self.b_out,
            "consts": consts,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, NDArray[np.float32]]) -> SpikingRuntime:
        """Inverse of :meth:`to_arrays`."""
        beta, threshold, steps = (float(v) for v in arrays["consts"])
        return cls(
            w_in=np.array(arrays["w_in"], dtype=np.float32),
            b_in=np.array(arrays["b_in"], dtype=np.float32),
            w_out=np.array(arrays["w_out"], dtype=np.float32),
            b_out=np.array(arrays["b_out"], dtype=np.float32),
            beta=beta,
            threshold=threshold,
            steps=int(steps),
        )


def stdp(
    w: F32,
    pre: F32,
    post: F32,
    *,
    a_plus: float,
    a_minus: float,
    decay_plus: float,
    decay_minus: float,
    w_min: float,
    w_max: float,
) -> F32:
    """Pair-based STDP over spike trains, in place on ``w``; returns the total change.

    The rule of :class:`emily.cognition.neural.STDP` (one sample, traces decayed, then
    ``dW = a_plus * post (x) x_pre - a_minus * x_post (x) pre``, clamped to
    ``[w_min, w_max]``, then the traces take this step's spikes), in NumPy: the reflex
    adapts a ``[H, A]`` slice of about 128 x 100 weights, where torch's per-op dispatch
    costs more than the arithmetic. ``tests/cognition/reflex/test_classifier.py`` checks
    it against the torch rule.

    Parameters
    ----------
    w : ``[N_post, N_pre]`` weights, updated in place. pre : ``[T, N_pre]`` and post :
        ``[T, N_post]`` spikes in {0, 1}. decay_plus, decay_minus : per-step trace decay
        ``exp(-dt / tau)``.
    """
    f32 = w.dtype.type
    ap, am, dp, dm = f32(a_plus), f32(a_minus), f32(decay_plus), f32(decay_minus)
    before = w.copy()
    x_post = np.zeros(w.shape[0], dtype=w.dtype)
    if bool((pre == pre[:, :1]).all()):
        # every input spikes alike at each step (the reflex's active n-grams): one pre
        # trace for all of them, so each step's change is one column vector, broadcast
        x = f32(0.0)
        for p, q in zip(pre[:, 0], post, strict=True):
            x *= dp
            x_post *= dm
            w += (ap * x * q - am * p * x_post)[:, None]
            np.clip(w, w_min, w_max, out=w)
            x += p
            x_post += q
    else:
        x_pre = np.zeros(w.shape[1], dtype=w.dtype)
        for p, q in zip(pre, post, strict=True):
            x_pre *= dp
            x_post *= dm
            w += ap * np.outer(q, x_pre) - am * np.outer(x_post, p)
            np.clip(w, w_min, w_max, out=w)
            x_pre += p
            x_post += q
    delta: F32 = w - before
    return delta


def softmax_rows(logits: F32) -> F32:
    """Row-wise softmax of ``[..., C]`` logits."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: F32 = e / e.sum(axis=-1, keepdims=True)
    return out
