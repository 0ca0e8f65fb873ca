"""Alpha gating of workspace candidates (the closed forms of `AlphaGate`, in floats).

Candidates' saliences, scaled to ``[0, 1]``, are phase-coded by the alpha oscillator:
the most salient pass the falling inhibition first, which sets their entry order. The
workspace reads out a quarter cycle after the inhibition peak; a candidate that has not
passed by then enters with its salience scaled by the gain at that moment. Allostasis's
``alpha_gain`` lowers the inhibition depth (``depth = 1 / alpha_gain``, at most 1), so
more items pass early when arousal is high.

A cycle gates about ten candidates, so this runs the oscillator's closed-form
expressions in plain Python floats (float64, as the torch gate computes them): a few
microseconds instead of about 0.5 ms of tensor dispatch per cycle.
``tests/cognition/test_gating.py`` checks it against :class:`AlphaGate`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from emily.cognition.neural.alpha import AlphaConfig
from emily.cognition.workspace import Candidate

TWO_PI = 2 * math.pi


@dataclass(frozen=True)
class Gated:
    """order : entry order (candidate indices); factors : salience multipliers in [0, 1];
    times_ms : when each candidate passes the inhibition after its peak (ms)."""

    order: list[int]
    factors: list[float]
    times_ms: list[float]


def inhibition(config: AlphaConfig, t_ms: float) -> float:
    """Inhibition ``I(t)`` in ``[0, depth]`` at ``t_ms`` (ms), as ``AlphaGate.inhibition``."""
    phase = math.fmod(TWO_PI * config.freq_hz * t_ms / 1000.0 + config.phase_offset_rad, TWO_PI)
    if phase < 0:
        phase += TWO_PI
    return config.depth * (1 + math.cos(phase)) / 2


def firing_time_ms(config: AlphaConfig, salience: float) -> float:
    """Delay (ms) after the inhibition peak at which salience ``s`` in [0, 1] passes."""
    if config.depth == 0:
        return 0.0
    x = min(1.0, max(-1.0, 2 * salience / config.depth - 1))
    return math.acos(x) / TWO_PI * config.period_ms


def alpha_gate(candidates: Sequence[Candidate], alpha_gain: float = 1.0) -> Gated:
    """Entry order and salience factors of ``candidates`` (see the module docstring)."""
    if not candidates:
        return Gated([], [], [])
    scores = [c.score for c in candidates]
    top = max(scores)
    s = [x / top for x in scores] if top > 0 else [0.0] * len(scores)
    config = AlphaConfig(depth=min(1.0, 1.0 / max(alpha_gain, 1e-6)))
    readout = config.period_ms / 4
    bar = inhibition(config, readout)
    late = min(1.0, max(0.0, 1 - bar))
    times = [firing_time_ms(config, x) for x in s]
    by_salience = sorted(range(len(s)), key=lambda i: -s[i])  # stable: ties keep input order
    order = sorted(by_salience, key=lambda i: times[i])  # stable again, as AlphaGate.order
    return Gated(
        order=order,
        factors=[1.0 if x >= bar else late for x in s],
        times_ms=times,
    )
