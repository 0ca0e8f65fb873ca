"""Alpha gating of workspace candidates (uses :class:`emily.cognition.neural.AlphaGate`).

Candidates' saliences, scaled to ``[0, 1]``, are phase-coded by the alpha oscillator:
the most salient pass the falling inhibition first, which sets their entry order. The
workspace reads out a quarter cycle after the inhibition peak; a candidate that has not
passed by then enters with its salience scaled by the gain at that moment. Allostasis's
``alpha_gain`` lowers the inhibition depth (``depth = 1 / alpha_gain``, at most 1), so
more items pass early when arousal is high.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from emily.cognition.neural.alpha import AlphaConfig, AlphaGate
from emily.cognition.workspace import Candidate


@dataclass(frozen=True)
class Gated:
    """order : entry order (candidate indices); factors : salience multipliers in [0, 1];
    times_ms : when each candidate passes the inhibition after its peak (ms)."""

    order: list[int]
    factors: list[float]
    times_ms: list[float]


def alpha_gate(candidates: Sequence[Candidate], alpha_gain: float = 1.0) -> Gated:
    """Entry order and salience factors of ``candidates`` (see the module docstring)."""
    if not candidates:
        return Gated([], [], [])
    scores = torch.tensor([c.score for c in candidates], dtype=torch.float64)
    top = float(scores.max())
    s = scores / top if top > 0 else torch.zeros_like(scores)
    gate = AlphaGate(AlphaConfig(depth=min(1.0, 1.0 / max(alpha_gain, 1e-6))))
    readout = gate.config.period_ms / 4
    passed = gate.passes(s, readout)
    late = float(gate.gain(readout))
    factors = [1.0 if bool(p) else late for p in passed]
    return Gated(
        order=[int(i) for i in gate.order(s)],
        factors=factors,
        times_ms=[float(t) for t in gate.firing_times_ms(s)],
    )
