"""The running cycle learns from feedback: the next decisions use the new counts."""

from __future__ import annotations

import uuid

import pytest

from emily.bus.rpc import RequestFailed
from emily.bus.schemas.cognition import ObserveRequest
from emily.cognition.cycle import Cognition
from emily.cognition.reflex import Reflex, ReflexModel


def test_the_running_cycle_learns_from_feedback_and_traces_it(fast_reflex: ReflexModel) -> None:
    """The real cycle (n-gram reflex, no bus): feedback-only observations move the counts
    its next decisions use, and unknown cycles get not_found."""
    cognition = Cognition(Reflex(fast_reflex))
    try:
        ask = ObserveRequest(text="quux zorb the flibbet", session="t", allow_llm=False)
        first = cognition.observe(ask)
        assert first.trace.policy == "clarify"
        g0 = {s.policy: s.G for s in first.trace.policies}
        for _ in range(6):
            reply = cognition.observe(ask)
            fb = cognition.feedback(
                ObserveRequest(feedback="bad", feedback_for=reply.trace.cycle_id)
            )
            assert fb.action == "acknowledge" and fb.trace.policy == "clarify"
            assert str(reply.trace.cycle_id) in fb.trace.notes[0]
        later = cognition.observe(ask)
        g1 = {s.policy: s.G for s in later.trace.policies}
        assert cognition.learner.snapshot()["updates"] == 6
        assert first.trace.learning is not None and later.trace.learning is not None
        assert later.trace.learning["updates"] == 6
        assert fb.trace.learning == later.trace.learning
        assert later.trace.learning["ambiguous.clarify"] < first.trace.learning["ambiguous.clarify"]
        # asking to clarify now looks worse; recall has the same cost, so the gap between
        # them is free of allostasis's impatience, which moves every cost
        assert g1["clarify"] - g1["recall"] > g0["clarify"] - g0["recall"] + 0.1
        with pytest.raises(RequestFailed) as info:
            cognition.feedback(ObserveRequest(feedback="good", feedback_for=uuid.uuid4()))
        assert info.value.reply.code == "not_found"
    finally:
        cognition.close()


def test_an_outage_of_the_llm_does_not_teach_the_agent_to_ask_instead(
    fast_reflex: ReflexModel,
) -> None:
    """Without an inference service a question that needs deliberation gets the best
    policy left; the turns after it are no evidence that asking helps, so once the LLM is
    back the agent deliberates as before (crediting them once made it ask from then on)."""
    cognition = Cognition(Reflex(fast_reflex))
    try:
        question = ObserveRequest(text="why do tides follow the moon", session="t", allow_llm=True)
        other = ObserveRequest(text="what should I read about the ocean", session="t")
        prior = cognition.learner.success()
        for _ in range(30):
            reply = cognition.observe(question)
            assert "inference" in reply.trace.missing and reply.trace.policy != "deliberate"
            assert any("fallback answer" in n for n in reply.trace.notes), reply.trace.notes
            cognition.observe(other)
        assert cognition.learner.success() == prior
        assert cognition.learner.snapshot()["updates"] == 0
        # with an LLM up, deliberating is again what the agent would do with the question
        cognition.responder.llm_up = lambda: True  # type: ignore[method-assign]
        back = cognition.observe(question).trace
        best = max(back.policies, key=lambda s: s.probability)
        assert best.policy == "deliberate", back.policies
    finally:
        cognition.close()
