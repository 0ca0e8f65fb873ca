"""Allostasis: neuromodulator-like variables kept near their set points.

Four variables, each in ``[0, 1]``:

- ``arousal`` rises with novelty, failures and latency spikes;
- ``reward`` (reward prediction) rises with rewards, falls with failures;
- ``patience`` falls with latency spikes and failures;
- ``load`` rises with latency spikes (how busy the system feels).

Events push a variable towards 0 or 1 by a fraction of the remaining distance, so it
never leaves ``[0, 1]``. Between events each variable relaxes towards its set point
exponentially with time constant ``tau_s``. The variables set the policy precision
``gamma``, the attention (alpha) gain, the reflex threshold shift and the exploration
temperature (:meth:`Allostasis.modulation`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

VARIABLES = ("arousal", "reward", "patience", "load")


@dataclass(frozen=True)
class AllostasisConfig:
    """Set points (in [0, 1]), relaxation time constant (s) and event gains (in [0, 1])."""

    arousal: float = 0.3
    reward: float = 0.5
    patience: float = 0.7
    load: float = 0.2
    tau_s: float = 30.0
    gamma: float = 16.0
    gain_novelty: float = 0.3
    gain_failure: float = 0.4
    gain_latency: float = 0.3
    gain_reward: float = 0.3


@dataclass(frozen=True)
class Modulation:
    """What allostasis sets for one cycle.

    gamma : policy precision (16 at the set points, within ``[gamma/4, 4 gamma]``).
    alpha_gain : multiplies workspace salience (1 at the set points, in [0.5, 1.7]).
    reflex_shift : added to the reflex thresholds (0 at the set points, in [-0.05, 0.15]:
        load lowers it a little, never enough to let out-of-scope text through).
    temperature : exploration temperature of stochastic action selection (1 at the set
        points, in [0.25, 2]).
    """

    gamma: float
    alpha_gain: float
    reflex_shift: float
    temperature: float


class Allostasis:
    """The regulated variables; thread-safe. ``clock`` returns seconds (monotonic)."""

    def __init__(
        self,
        config: AllostasisConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or AllostasisConfig()
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()
        self._set_points = {v: float(getattr(self.config, v)) for v in VARIABLES}
        self.state = dict(self._set_points)

    def set_point(self, name: str) -> float:
        """The set point of variable ``name``."""
        try:
            return self._set_points[name]
        except KeyError:
            raise ValueError(f"no allostatic variable {name!r}; one of {VARIABLES}") from None

    def _relax(self) -> None:
        now = self._clock()
        dt = max(0.0, now - self._last)
        self._last = now
        if dt == 0.0:
            return
        k = math.exp(-dt / self.config.tau_s)
        for v, sp in self._set_points.items():
            self.state[v] = sp + (self.state[v] - sp) * k

    def _push(self, name: str, gain: float) -> None:
        """Move ``name`` a fraction ``|gain|`` of the way to 1 (gain > 0) or 0 (gain < 0)."""
        g = max(-1.0, min(1.0, gain))
        x = self.state[name]
        self.state[name] = x + g * (1.0 - x) if g >= 0 else x + g * x

    def snapshot(self) -> dict[str, float]:
        """Current values after relaxation, ``{name: value in [0, 1]}``."""
        with self._lock:
            self._relax()
            return dict(self.state)

    def event(self, kind: str, magnitude: float = 1.0) -> dict[str, float]:
        """Register an event and return the new values.

        Parameters
        ----------
        kind : ``novelty``, ``failure``, ``latency`` (a stage over its budget) or ``reward``
            (negative magnitude for a disappointment).
        magnitude : strength in ``[-1, 1]`` (``novelty`` and ``latency`` use ``[0, 1]``).
        """
        c = self.config
        m = max(-1.0, min(1.0, float(magnitude)))
        if math.isnan(m):
            raise ValueError("event magnitude must be a number in [-1, 1]")
        with self._lock:
            self._relax()
            if kind == "novelty":
                self._push("arousal", c.gain_novelty * max(m, 0.0))
            elif kind == "failure":
                self._push("arousal", c.gain_failure * abs(m))
                self._push("reward", -c.gain_failure * abs(m))
                self._push("patience", -c.gain_failure * abs(m))
            elif kind == "latency":
                self._push("load", c.gain_latency * max(m, 0.0))
                self._push("patience", -c.gain_latency * max(m, 0.0))
                self._push("arousal", 0.5 * c.gain_latency * max(m, 0.0))
            elif kind == "reward":
                self._push("reward", c.gain_reward * m)
            else:
                raise ValueError(
                    f"unknown allostatic event {kind!r}; use novelty, failure, latency or reward"
                )
            return dict(self.state)

    def modulation(self) -> Modulation:
        """Gamma, alpha gain, reflex threshold shift and temperature for this cycle."""
        s = self.snapshot()
        d = {v: s[v] - self.set_point(v) for v in VARIABLES}
        gamma = self.config.gamma * 2.0 ** max(-2.0, min(2.0, 2 * (d["reward"] - d["arousal"])))
        alpha_gain = max(0.5, min(1.7, 1.0 + d["arousal"]))
        shift = max(-0.05, min(0.15, 0.3 * d["patience"] - 0.3 * d["load"]))
        temperature = max(0.25, min(2.0, 1.0 + d["arousal"] - d["reward"]))
        return Modulation(
            gamma=gamma, alpha_gain=alpha_gain, reflex_shift=shift, temperature=temperature
        )
