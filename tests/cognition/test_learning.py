"""Online learning from outcomes: the policy preference moves with feedback, and back."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emily.bus.schemas.cognition import ObserveRequest
from emily.cognition import agent
from emily.cognition.aif.learning import update_a
from emily.cognition.learning import (
    FALLBACK,
    OUTCOME,
    Credit,
    Learner,
    LearningConfig,
    LearningStateError,
    UnknownCycleError,
    is_correction,
)

STRONG_MEMORY = agent.Observation(reflex=0, memory=2, novelty=0)


def answered(learner: Learner, policy: str, session: str = "s1") -> uuid.UUID:
    """Credit a fresh cycle that took ``policy`` on :data:`STRONG_MEMORY`."""
    d = agent.decide(STRONG_MEMORY, success=learner.success())
    cid = uuid.uuid4()
    req = ObserveRequest(text="what is my dog called", session=session)
    learner.credit(cid, req, Credit(policy, tuple(d.need.values())))
    return cid


def q_recall(learner: Learner) -> float:
    return agent.decide(STRONG_MEMORY, success=learner.success()).q_pi["recall"]


def test_consistent_feedback_moves_the_preference_and_opposite_feedback_moves_it_back() -> None:
    learner = Learner()
    before = agent.decide(STRONG_MEMORY, success=learner.success())
    assert before.policy == "recall" and before.q_pi["recall"] > 0.99
    for _ in range(10):
        learner.feedback(ObserveRequest(feedback="bad", feedback_for=answered(learner, "recall")))
    after_bad = agent.decide(STRONG_MEMORY, success=learner.success())
    assert after_bad.policy == "deliberate" and after_bad.q_pi["recall"] < 0.01
    assert learner.snapshot()["memory.recall"] < 0.6 < agent.PRIOR_SUCCESS[1][1]
    for _ in range(10):
        # no feedback_for: the session's last answer is credited
        answered(learner, "recall")
        learner.feedback(ObserveRequest(feedback="good", session="s1"))
    assert agent.decide(STRONG_MEMORY, success=learner.success()).policy == "recall"
    assert q_recall(learner) > 0.99
    assert learner.snapshot()["updates"] == 20


def test_an_update_is_pymdps_dirichlet_rule_on_the_outcome_modality() -> None:
    learner = Learner()
    before = learner.pA.copy()
    cid = answered(learner, "recall")
    need = np.array(list(agent.decide(STRONG_MEMORY).need.values()))
    learner.feedback(ObserveRequest(feedback="good", feedback_for=cid))
    model = agent.build_model()
    act = np.eye(agent.N_ACT)[1 + agent.POLICIES.index("recall")]
    want = update_a([before], [model.A[OUTCOME]], [1], [need, act], 1.0)[0]
    np.testing.assert_allclose(learner.pA, want, atol=1e-12)
    # B's counts grew where the start -> recall transition is possible, and only there
    grown = learner.pB[1] - agent.build_model().B[1] * LearningConfig().prior_count
    assert grown[2, 0, 2] == pytest.approx(1.0) and np.count_nonzero(grown) == 1


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(agent.POLICIES), st.booleans()), max_size=300))
def test_counts_stay_bounded_whatever_the_feedback(events: list[tuple[str, bool]]) -> None:
    cfg = LearningConfig()
    learner = Learner(config=cfg)
    for policy, good in events:
        cid = answered(learner, policy)
        learner.feedback(ObserveRequest(feedback="good" if good else "bad", feedback_for=cid))
    p = np.asarray(learner.success())
    assert (p >= cfg.p_min - 1e-4).all() and (p <= 1 - cfg.p_min + 1e-4).all()
    assert (learner.pA[1:, :, 1:].sum(axis=0) <= cfg.max_count + 1e-9).all()
    for b in learner.pB:
        assert (b.sum(axis=0) <= cfg.max_count + 1e-9).all()
    agent.build_model(success=learner.success())  # still a valid model


def test_the_learned_counts_and_recent_cycles_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "cognition" / "learning.json"
    learner = Learner(path)
    for _ in range(8):
        learner.feedback(ObserveRequest(feedback="bad", feedback_for=answered(learner, "recall")))
    pending = answered(learner, "recall")
    learner.save()
    assert not list(path.parent.glob(".*.tmp"))
    again = Learner(path)
    assert again.success() == learner.success() and again.snapshot() == learner.snapshot()
    assert agent.decide(STRONG_MEMORY, success=again.success()).policy == "deliberate"
    # a cycle answered before the restart can still get its feedback
    assert again.feedback(ObserveRequest(feedback="good", feedback_for=pending)) is not None


def test_a_damaged_state_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "learning.json"
    path.write_text(json.dumps({"format": 1, "pA": [[1.0]], "pB": [], "recent": [], "last": []}))
    with pytest.raises(LearningStateError, match="move the file away"):
        Learner(path)


def test_one_vote_per_answer_however_often_it_is_repeated() -> None:
    learner = Learner()
    cid = answered(learner, "recall")
    first = learner.feedback(ObserveRequest(feedback="bad", feedback_for=cid))
    after_one = learner.success()
    for _ in range(20):
        again = learner.feedback(ObserveRequest(feedback="bad", feedback_for=cid))
        assert again is not None and again.weight == 0.0
    assert first is not None and first.weight == 1.0
    assert learner.success() == after_one and learner.snapshot()["updates"] == 1


def test_feedback_about_an_unknown_cycle_is_refused() -> None:
    learner = Learner()
    cid = answered(learner, "recall")  # the default user's answer
    with pytest.raises(UnknownCycleError):
        learner.feedback(ObserveRequest(feedback="bad", feedback_for=cid, user="mallory"))
    assert learner.snapshot()["updates"] == 0
    with pytest.raises(UnknownCycleError, match="feedback_for"):
        learner.feedback(ObserveRequest(feedback="good", feedback_for=uuid.uuid4()))
    with pytest.raises(UnknownCycleError, match="this session"):
        learner.feedback(ObserveRequest(feedback="good", session="nobody"))


@pytest.mark.parametrize(
    ("text", "correction"),
    [
        ("no, it's called Rex", True),
        ("No. That is Tuesday", True),
        ("that's wrong", True),
        ("That is not what I said", True),
        ("you're wrong about that", True),
        ("nobody told me", False),
        ("now tell me about tea", False),
        ("not now, thanks... wait what", False),
        ("is that wrong?", False),
    ],
)
def test_corrections_are_recognised(text: str, correction: bool) -> None:
    assert is_correction(text) is correction


def test_implicit_outcomes_a_correction_and_an_answered_clarification() -> None:
    learner = Learner()
    answered(learner, "recall")
    base = learner.snapshot()["memory.recall"]
    learned = learner.implicit(ObserveRequest(text="no, that's not right", session="s1"))
    assert learned is not None and not learned.success and learned.weight == 0.5
    assert learner.snapshot()["memory.recall"] < base
    # the same answer is not credited twice by the turns that follow
    assert learner.implicit(ObserveRequest(text="no, really", session="s1")) is None
    answered(learner, "clarify")
    base = learner.snapshot()["ambiguous.clarify"]
    learned = learner.implicit(ObserveRequest(text="I meant the blue one", session="s1"))
    assert learned is not None and learned.success and learned.source.startswith("clarif")
    assert learner.snapshot()["ambiguous.clarify"] > base
    # another session's turn says nothing about this one's answers
    answered(learner, "recall", session="s2")
    assert learner.implicit(ObserveRequest(text="no, wrong", session="s3")) is None


def test_a_fallback_answer_is_remembered_but_credits_no_policy(tmp_path: Path) -> None:
    learner = Learner(tmp_path / "learning.json")
    cid = uuid.uuid4()
    asked = ObserveRequest(text="why is the sky blue", session="s1")
    need = tuple(agent.decide(STRONG_MEMORY).need.values())
    learner.credit(cid, asked, Credit("clarify", need, "digest", chosen=False))
    before = learner.success()
    # the reply after it is no success of asking, nor a correction a failure of anything
    assert learner.implicit(ObserveRequest(text="tell me anyway", session="s1")) is None
    assert learner.implicit(ObserveRequest(text="no, that's wrong", session="s1")) is None
    fb = learner.feedback(ObserveRequest(feedback="bad", feedback_for=cid))
    assert fb is not None and fb.weight == 0.0 and fb.source == FALLBACK
    assert learner.success() == before and learner.snapshot()["updates"] == 0
    # the flag survives a restart, and a file saved without it reads as chosen
    learner.save()
    assert (
        Learner(learner.path).feedback(ObserveRequest(feedback="good", feedback_for=cid)).weight
        == 0.0
    )  # type: ignore[union-attr]
    state = json.loads((tmp_path / "learning.json").read_text())
    state["recent"] = [[*row[:4], False, row[5]] for row in state["recent"]]  # unrated
    (tmp_path / "learning.json").write_text(json.dumps(state))
    old = Learner(tmp_path / "learning.json").feedback(
        ObserveRequest(feedback="good", feedback_for=cid)
    )
    assert old is not None and old.weight == 1.0
    state["recent"] = [row[:5] for row in state["recent"]]
    (tmp_path / "learning.json").write_text(json.dumps(state))
    with pytest.raises(LearningStateError, match="6 or 7 fields"):
        Learner(tmp_path / "learning.json")
