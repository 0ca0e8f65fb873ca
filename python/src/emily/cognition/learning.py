"""The agent learns from outcomes: Dirichlet counts over its A and B, kept across restarts.

Hook for the observe path: ``Cognition.feedback(request) -> ObserveReply`` (in
:mod:`emily.cognition.cycle`) answers an observation that carries ``feedback`` and no
text; it calls :meth:`Learner.feedback`. A text observation goes through
:meth:`Learner.implicit` (and :meth:`Learner.feedback` when it carries feedback too)
before its policy is chosen, and :meth:`Learner.credit` after.

What is learned
---------------
Each answered cycle is remembered (bounded) with what it can be credited for: the
policy it took and its need posterior ``q(need)``. An outcome about it adds counts to
the outcome modality of ``A`` (:func:`~emily.cognition.aif.learning.update_a`, outcome
success or failure, with ``q(s) = [q(need), onehot(act)]``) and to ``B``
(:func:`~emily.cognition.aif.learning.update_b`, start -> act). The agent then decides
with ``P(success | need, act)`` read from the counts. ``B``'s transitions are
deterministic, and counts only go where ``B`` is non-zero, so its normalised
probabilities stay as designed; its counts record how often each act was credited.

Outcomes: explicit feedback ``good``/``bad`` (about ``feedback_for``, else the session's
last answer), weight 1, counted once per answer; a turn that starts as a correction
("no, ...", "that's wrong") is a failure of the answer before it, and a turn after a
clarifying question that is not the same question again is a success of asking, weight
0.5 each. An answer the agent did not choose (``Credit.chosen`` false: a fallback when
the LLM or a canned reply was missing, or the best policy left once a missing service
ruled out the one it wanted) is remembered, so that a later turn credits nothing else
in its place, but no outcome about it is counted.

Bounds: each ``(need, act)`` column holds at most :attr:`LearningConfig.max_count`
counts (older evidence is scaled down when it would exceed it, a decay that keeps the
mean) and its ``P(success)`` stays within ``[p_min, 1 - p_min]``, so no run of feedback
drives a policy to certainty either way, and later feedback can always move it back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from emily.bus.schemas.cognition import ObserveReply, ObserveRequest, Trace
from emily.cognition import agent
from emily.cognition.aif.learning import update_a, update_b
from emily.cognition.errors import CognitionError
from emily.ids import uuid7

OUTCOME = 3
"""Index of the outcome modality (none, success, failure) in the agent's ``A``."""
FORMAT = 1
FALLBACK = "feedback on a fallback answer"
"""The source of a :class:`Learned` about an answer the agent did not choose (weight 0)."""
_CORRECTION = re.compile(
    r"^\s*(no\b[\s,.!]|nope\b|wrong\b|incorrect\b|not (true|right|correct)\b|"
    r"that('?s| is| was) (not|wrong|incorrect)\b|that isn'?t\b|you('?re| are) wrong\b)",
    re.IGNORECASE,
)


class UnknownCycleError(CognitionError):
    """Feedback names a cycle this agent does not remember (or the session has none)."""


class LearningStateError(CognitionError):
    """The saved learning state cannot be read; the message says which file to move."""


def is_correction(text: str) -> bool:
    """Whether a user turn opens by rejecting the previous answer ("no, ...")."""
    return bool(_CORRECTION.match(text))


@dataclass(frozen=True)
class LearningConfig:
    """Bounds and rates of online learning.

    Attributes
    ----------
    prior_count : counts per ``(need, act)`` column of the design's prior (its weight).
    max_count : most counts a column may hold; more evidence decays the old.
    p_min : ``P(success)`` stays in ``[p_min, 1 - p_min]``.
    explicit_lr, implicit_lr : counts one explicit or implicit outcome adds.
    remember : recent cycles kept for credit.
    """

    prior_count: float = 10.0
    max_count: float = 40.0
    p_min: float = 0.05
    explicit_lr: float = 1.0
    implicit_lr: float = 0.5
    remember: int = 512


@dataclass(frozen=True)
class Credit:
    """What a cycle can be credited for: its policy and need posterior ``[4]``, for a
    clarifying question a digest of the turn it asked about (never the text itself),
    whether explicit feedback about it has been counted, and whether the agent chose
    the policy (``chosen``; see the module docstring); ``user`` is whose turn it was."""

    policy: str
    need: tuple[float, ...]
    asked: str = ""
    rated: bool = False
    user: str = ""
    chosen: bool = True


@dataclass(frozen=True)
class Learned:
    """One applied outcome: the credited cycle, its policy, success or not, the weight."""

    cycle_id: uuid.UUID
    policy: str
    success: bool
    weight: float
    source: str


def digest(text: str) -> str:
    """A short digest of a turn's normalised text (to tell a repeat from a reply)."""
    norm = " ".join(text.lower().split())
    return hashlib.sha256(norm.encode()).hexdigest()[:16]


def _remembered(row: list[object]) -> tuple[uuid.UUID, Credit]:
    """One saved ``recent`` row: id, policy, need, asked, rated, user and, in files
    written since the agent tells fallbacks apart, chosen (absent: chosen)."""
    if len(row) not in (6, 7):
        raise ValueError(f"a remembered cycle has 6 or 7 fields, not {len(row)}")
    k, p, n, a, r, u, *rest = row
    if not isinstance(n, list):
        raise ValueError("a remembered cycle's need is a list of 4 probabilities")
    need = tuple(float(v) for v in n)
    chosen = bool(rest[0]) if rest else True
    return uuid.UUID(str(k)), Credit(str(p), need, str(a), bool(r), str(u), chosen)


def _session_key(request: ObserveRequest) -> str:
    return f"{request.user}\x1f{request.session or ''}"


class Learner:
    """Dirichlet counts of the agent's outcome likelihood and transitions (thread-safe).

    Parameters
    ----------
    path : JSON file the state is written to by :meth:`save` (atomically) and read from
        at start; ``None`` keeps it in memory only. Callers save after an update, off
        the reply's path where they can.
    """

    def __init__(self, path: Path | None = None, config: LearningConfig | None = None) -> None:
        self.path = path
        self.config = config or LearningConfig()
        model = agent.build_model()
        self._A_out = model.A[OUTCOME]
        self._B = model.B
        self.pA = self._A_out * self.config.prior_count  # [3, 4 needs, N_ACT]
        self.pB = [b * self.config.prior_count for b in self._B]
        self.updates = 0
        self._recent: OrderedDict[uuid.UUID, Credit] = OrderedDict()
        self._last: OrderedDict[str, uuid.UUID] = OrderedDict()
        self._lock = threading.Lock()
        self._success = agent.PRIOR_SUCCESS
        if path is not None and path.exists():
            self._load(path)
        self._refresh()

    # -- what the agent reads -------------------------------------------------------------

    def success(self) -> agent.Success:
        """The learned ``P(success | need, act)`` ``[4][4]`` for :func:`agent.decide`."""
        return self._success

    def snapshot(self) -> dict[str, float]:
        """For the trace: ``P(success)`` per ``need.policy`` and the count of updates."""
        out = {
            f"{n}.{p}": v
            for n, row in zip(agent.NEEDS, self._success, strict=True)
            for p, v in zip(agent.POLICIES, row, strict=True)
        }
        out["updates"] = float(self.updates)
        return out

    # -- outcomes -------------------------------------------------------------------------

    def credit(self, cycle_id: uuid.UUID, request: ObserveRequest, decision: Credit) -> None:
        """Remember an answered cycle so a later outcome can be credited to it."""
        with self._lock:
            self._recent[cycle_id] = replace(decision, user=request.user)
            key = _session_key(request)
            self._last[key] = cycle_id
            self._last.move_to_end(key)
            while len(self._recent) > self.config.remember:
                self._recent.popitem(last=False)
            while len(self._last) > self.config.remember:
                self._last.popitem(last=False)

    def feedback(self, request: ObserveRequest) -> Learned | None:
        """Apply ``request.feedback`` to ``feedback_for`` or the session's last answer.

        Returns ``None`` when the request carries no feedback. Raises
        :class:`UnknownCycleError` when there is no such cycle to credit.
        """
        if request.feedback is None:
            return None
        with self._lock:
            cid = request.feedback_for or self._last.get(_session_key(request))
            credit = self._recent.get(cid) if cid is not None else None
            if credit is not None and credit.user != request.user:
                credit = None  # another user's answer is not this user's to rate
            if cid is None or credit is None:
                what = f"cycle {cid}" if cid is not None else "an answer in this session"
                raise UnknownCycleError(
                    f"feedback needs {what} among the last {self.config.remember} cycles; "
                    "give feedback_for the trace's cycle_id of a recent answer"
                )
            good = request.feedback == "good"
            if credit.rated:  # one vote per answer: repeating it cannot push further
                return Learned(cid, credit.policy, good, 0.0, "feedback already counted")
            if not credit.chosen:
                self._recent[cid] = replace(credit, rated=True)
                return Learned(cid, credit.policy, good, 0.0, FALLBACK)
            self._recent[cid] = replace(credit, rated=True)
            return self._apply(cid, credit, good, self.config.explicit_lr, "feedback")

    def implicit(self, request: ObserveRequest) -> Learned | None:
        """Learn from a text turn about the session's previous answer, if it says anything:
        any reply after a clarifying question is its success; a correction is a failure."""
        if not request.text:
            return None
        with self._lock:
            cid = self._last.get(_session_key(request))
            credit = self._recent.get(cid) if cid is not None else None
            if cid is None or credit is None or not credit.chosen:
                return None
            if credit.policy == "clarify":
                if credit.asked == digest(request.text):
                    return None
                good, source = True, "clarification answered"
            elif is_correction(request.text):
                good, source = False, "correction"
            else:
                return None
            # one implicit outcome per answer: the next turn cannot credit it again
            del self._last[_session_key(request)]
            return self._apply(cid, credit, good, self.config.implicit_lr, source)

    def _apply(self, cid: uuid.UUID, credit: Credit, good: bool, lr: float, source: str) -> Learned:
        act = 1 + agent.POLICIES.index(credit.policy)
        need = np.asarray(credit.need, dtype=np.float64)
        qs = [need, np.eye(agent.N_ACT)[act]]
        self.pA = update_a([self.pA], [self._A_out], [1 if good else 2], qs, lr)[0]
        qs_prev = [need, np.eye(agent.N_ACT)[0]]
        self.pB = update_b(self.pB, self._B, [0, act], qs, qs_prev, lr)
        self.updates += 1
        self._bound()
        self._refresh()
        return Learned(cid, credit.policy, good, lr, source)

    # -- bounds, state --------------------------------------------------------------------

    def _bound(self) -> None:
        cfg = self.config
        acted = self.pA[1:, :, 1:]  # success and failure counts [2, 4, 4]
        total = acted.sum(axis=0)
        total = np.minimum(total, cfg.max_count)
        p = np.clip(acted[0] / acted.sum(axis=0), cfg.p_min, 1.0 - cfg.p_min)
        self.pA[1, :, 1:] = p * total
        self.pA[2, :, 1:] = (1.0 - p) * total
        for f, b in enumerate(self.pB):
            # per (from-state, act) column, the same cap as A's
            col = b.sum(axis=0, keepdims=True)
            self.pB[f] = b * np.minimum(1.0, cfg.max_count / np.maximum(col, 1e-12))

    def _refresh(self) -> None:
        acted = self.pA[1:, :, 1:]
        p = acted[0] / acted.sum(axis=0)
        self._success = tuple(tuple(round(float(v), 4) for v in row) for row in p)

    def _save(self) -> None:
        if self.path is None:
            return
        state = {
            "format": FORMAT,
            "updates": self.updates,
            "pA": self.pA.tolist(),
            "pB": [b.tolist() for b in self.pB],
            "recent": [
                [str(k), c.policy, list(c.need), c.asked, c.rated, c.user, c.chosen]
                for k, c in self._recent.items()
            ],
            "last": [[k, str(v)] for k, v in self._last.items()],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def _load(self, path: Path) -> None:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if state.get("format") != FORMAT:
                raise ValueError(f"format {state.get('format')!r}, expected {FORMAT}")
            pA = np.asarray(state["pA"], dtype=np.float64)
            pB = [np.asarray(b, dtype=np.float64) for b in state["pB"]]
            if pA.shape != self.pA.shape or [b.shape for b in pB] != [b.shape for b in self.pB]:
                raise ValueError("count shapes do not match this agent's model")
            if not (np.isfinite(pA).all() and (pA >= 0).all()):
                raise ValueError("counts must be finite and non-negative")
            recent = OrderedDict(_remembered(row) for row in state["recent"])
            if any(c.policy not in agent.POLICIES for c in recent.values()):
                raise ValueError("a remembered cycle names an unknown policy")
            last = OrderedDict((str(k), uuid.UUID(v)) for k, v in state["last"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LearningStateError(
                f"cannot read the agent's learned counts in {path} ({exc}); move the file "
                "away to start from the design's prior"
            ) from exc
        self.pA, self.pB, self.updates = pA, pB, int(state["updates"])
        self._recent, self._last = recent, last
        self._bound()

    def save(self) -> None:
        """Write the state to ``path`` now (atomically: a crash leaves the old or new)."""
        with self._lock:
            self._save()


TIER_OF_POLICY = {"reflex": "reflex", "recall": "memory", "deliberate": "deliberation"}


def feedback_reply(
    learned: Learned, learner: Learner, allostasis: dict[str, float], gamma: float, ms: float
) -> ObserveReply:
    """The reply to a feedback-only observation: an acknowledgement whose trace names
    the credited cycle and policy and carries the learned ``P(success)`` (``ms``: time
    taken)."""
    verdict = "succeeded" if learned.success else "failed"
    trace = Trace.model_validate(
        {
            "cycle_id": uuid7(),
            "tier": TIER_OF_POLICY.get(learned.policy, "clarify"),
            "policy": learned.policy,
            "reflex": {
                "intent": "oos",
                "confidence": 0.0,
                "threshold": 1.0,
                "fired": False,
                "stage": "ngrams",
            },
            "workspace": [],
            "policies": [],
            "need": {},
            "memories": [],
            "latencies_ms": {"total": ms},
            "missing": [],
            "notes": [
                f"learned from {learned.source}: {learned.policy} {verdict} in cycle "
                f"{learned.cycle_id} (weight {learned.weight:g})"
            ],
            "allostasis": allostasis,
            "gamma": gamma,
            "episode": "skipped",
            "learning": learner.snapshot(),
        }
    )
    if learned.source == FALLBACK:
        response = "Noted. That answer was a fallback while a service was missing, so it "
        response += "does not change how I choose."
    elif not learned.weight:
        response = "Already noted."
    else:
        response = "Thanks, noted." if learned.success else "Sorry. Noted; I will weigh that."
    return ObserveReply(action="acknowledge", response=response, trace=trace)
