"""The cognitive cycle in-process, without a bus: memory and inference are absent."""

from __future__ import annotations

from prometheus_client import generate_latest

from emily.bus.schemas.cognition import ObserveRequest
from emily.cognition.config import CognitionConfig
from emily.cognition.cycle import Cognition
from emily.cognition.reflex import Reflex
from emily.cognition.reflex import data as rdata
from emily.cognition.workspace import Broadcast


def test_reflex_answers_a_greeting_without_any_service(private_reflex: Reflex) -> None:
    c = Cognition(private_reflex)
    reply = c.observe(ObserveRequest(text="hello"))
    t = reply.trace
    assert (t.tier, t.policy, reply.action) == ("reflex", "reflex", "reply")
    assert t.reflex.fired and t.reflex.intent == "greeting" and t.reflex.stage == "ngrams"
    # the reflex never waited for memory: no recall stage ran, nothing is reported missing
    assert "recall" not in t.latencies_ms and "deliberate" not in t.latencies_ms
    assert t.missing == []
    assert {"reflex", "workspace", "policy", "total"} <= set(t.latencies_ms)
    assert t.episode == "skipped"  # no bus: nowhere to store it
    c.close()


def test_unknown_observation_degrades_and_says_what_was_missing(private_reflex: Reflex) -> None:
    c = Cognition(private_reflex)
    reply = c.observe(ObserveRequest(text="what did my landlord say about the heating bill"))
    t = reply.trace
    assert not t.reflex.fired
    assert "memory" in t.missing
    assert t.tier == "clarify" and reply.action == "clarify"
    assert {p.policy for p in t.policies} == {"reflex", "recall", "deliberate", "clarify"}
    assert abs(sum(p.probability for p in t.policies) - 1.0) < 1e-9
    assert "embed" in t.latencies_ms  # the MiniLM stage ran
    c.close()


def test_allow_llm_false_never_deliberates(private_reflex: Reflex) -> None:
    c = Cognition(private_reflex)
    reply = c.observe(
        ObserveRequest(text="explain how vaccines train the immune system", allow_llm=False)
    )
    assert reply.trace.policy != "deliberate"
    assert next(p for p in reply.trace.policies if p.policy == "deliberate").probability == 0.0
    assert "inference" not in reply.trace.missing
    c.close()


def test_workspace_is_bounded_and_broadcast_in_process(private_reflex: Reflex) -> None:
    c = Cognition(private_reflex, CognitionConfig(capacity=3))
    got: list[Broadcast] = []
    c.subscribe(got.append)
    for text in ("hello", "what time is it", "tell me about the french revolution"):
        reply = c.observe(ObserveRequest(text=text))
        assert len(reply.trace.workspace) <= 3
    assert [b.cycle for b in got] == [1, 2, 3]
    kinds = {i.candidate.kind for b in got for i in b.items}
    assert {"percept", "reflex"} <= kinds
    c.close()


def test_metrics_record_stages_tiers_and_policies(private_reflex: Reflex) -> None:
    c = Cognition(private_reflex)
    c.observe(ObserveRequest(text="stop"))
    c.observe(ObserveRequest(text="why do cats purr"))
    text = generate_latest(c.metrics.registry).decode()
    assert 'emily_cognition_stage_seconds_bucket{le="0.0001",stage="reflex"}' in text
    assert 'emily_cognition_tier_total{tier="reflex"} 1.0' in text
    assert 'emily_cognition_policy_expected_free_energy{policy="deliberate"}' in text
    assert 'emily_cognition_degraded_total{missing="memory"} 1.0' in text
    c.close()


def test_reflex_adapts_with_stdp_only_near_its_threshold(private_reflex: Reflex) -> None:
    fast = private_reflex.fast
    texts = [r.text for r in rdata.load_intents() if r.intent != rdata.OOS]
    decided = [(t, fast.decide(t)) for t in texts]
    near = next(t for t, d in decided if d.fired and d.confidence < d.threshold + 0.1)
    far = next(t for t, d in decided if d.fired and d.confidence >= d.threshold + 0.1)
    c = Cognition(private_reflex)
    before = fast.runtime.w_in.copy()
    c.observe(ObserveRequest(text=far))
    c.episodes.close()  # joins the background worker that runs STDP
    assert (fast.runtime.w_in == before).all()
    c = Cognition(private_reflex)
    c.observe(ObserveRequest(text=near))
    c.close()
    assert not (fast.runtime.w_in == before).all()


def test_turns_are_classified_statements_acknowledged_and_questions_never_quoted_back(
    private_reflex: Reflex,
) -> None:
    c = Cognition(private_reflex)
    said = c.observe(ObserveRequest(text="My dog is called Rex", user="ann", session="s1"))
    assert (said.trace.act, said.action) == ("statement", "acknowledge")
    assert said.trace.policy != "deliberate" and "Rex" not in said.response
    question = "What is my dog called"
    asked = c.observe(ObserveRequest(text=question, user="ann", session="s1", allow_llm=False))
    assert asked.trace.act == "question" and question.lower() not in asked.response.lower()
    assert "don't know" in asked.response and "memory" in asked.trace.missing
    told = c.observe(ObserveRequest(text="Set a timer for five minutes", allow_llm=False))
    assert told.trace.act == "command" and told.action != "acknowledge"
    t = asked.trace
    assert t.episode_id == t.cycle_id and t.answer_id is not None and t.answer_id != t.cycle_id
    assert t.answer_id.version == 7 and t.cycle_id.version == 7
    c.close()


def test_a_question_about_the_users_own_things_is_not_a_canned_reflex_reply(
    private_reflex: Reflex,
) -> None:
    c = Cognition(private_reflex)
    who = c.observe(ObserveRequest(text="who are you", allow_llm=False))
    assert who.trace.reflex.fired and who.trace.reflex.intent == "identity"
    mine = c.observe(ObserveRequest(text="Who is my employer?", allow_llm=False))
    assert not mine.trace.reflex.fired and mine.trace.tier != "reflex", mine.trace
    assert mine.trace.act == "question" and "don't know" in mine.response
    for text in ("When is my birthday?", "Which team do I support?"):
        reply = c.observe(ObserveRequest(text=text, allow_llm=False))
        assert reply.trace.tier != "reflex" and "don't know" in reply.response, reply
    c.close()
