"""The policy a turn may take, and the workspace's candidates, over every kind of turn."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from emily.bus.schemas.cognition import ObserveRequest
from emily.bus.schemas.memory import Affect, Episode, Hit
from emily.cognition.allostasis import Allostasis
from emily.cognition.learning import Learner
from emily.cognition.policy import GOALS, candidates, decide
from emily.cognition.record import Cycle
from emily.cognition.reflex import ReflexResult
from emily.ids import uuid7


def hit(score: float) -> Hit:
    episode = Episode(
        id=uuid7(),
        text="My dog is called Rex",
        timestamp=datetime.now(UTC),
        affect=Affect(),
        context={},
        source="cognition",
    )
    return Hit(episode=episode, score=score, tier="L1")


turn = st.fixed_dictionaries(
    {
        "act": st.sampled_from(["statement", "question", "command"]),
        "intent": st.sampled_from(["oos", "greeting", "time"]),
        "confidence": st.floats(0.0, 1.0),
        "scores": st.lists(st.floats(-1.0, 1.0), max_size=3),
        "allow_llm": st.booleans(),
        "llm_up": st.booleans(),
    }
)


@settings(max_examples=200, deadline=None)
@given(turn)
def test_the_policy_is_always_one_the_turn_allows(t: dict[str, object]) -> None:
    """A statement is never deliberated, a command never recalled, nothing is recalled
    without a hit, an out-of-scope intent is never the reflex's, and the LLM is never
    the policy when it may not be used or is down (then the trace says so)."""
    cyc = Cycle(ObserveRequest(text="what is my dog called", allow_llm=bool(t["allow_llm"])))
    cyc.act = str(t["act"])
    cyc.hits = [hit(float(s)) for s in t["scores"]]  # type: ignore[attr-defined]
    confidence = float(t["confidence"])  # type: ignore[arg-type]
    result = ReflexResult(str(t["intent"]), confidence, 0.9, False, None, None, 0.0, 0)
    decision = decide(
        cyc,
        result,
        gamma=16.0,
        temperature=1.0,
        allostasis=Allostasis(),
        learner=Learner(),
        llm_up=lambda: bool(t["llm_up"]),
        stochastic=False,
    )
    p = decision.policy
    assert p in decision.G
    assert not (p == "deliberate" and cyc.act == "statement")
    assert not (p == "recall" and (cyc.act == "command" or not cyc.hits))
    assert not (p == "reflex" and result.intent == "oos")
    assert not (p == "deliberate" and not (t["allow_llm"] and t["llm_up"]))
    if "inference" in cyc.missing:
        assert not t["llm_up"] and any("no inference service" in n for n in cyc.notes)


def test_candidates_hold_the_percept_reflex_memories_and_goals_with_gated_scores() -> None:
    cyc = Cycle(ObserveRequest(text="what is my dog called"))
    cyc.hits = [hit(0.8), hit(-0.2)]
    result = ReflexResult("oos", 0.3, 0.9, False, None, None, 0.0, 0)
    cands, order = candidates(cyc, result, Allostasis(), alpha_gain=1.0)
    kinds = [c.kind for c in cands]
    assert kinds[:2] == ["percept", "reflex"] and kinds.count("memory") == 2
    assert kinds.count("goal") == len(GOALS)
    assert sorted(order) == list(range(len(cands)))
    assert all(c.score >= 0.0 for c in cands)  # a negative cosine gives no salience
