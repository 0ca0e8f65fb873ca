"""The two episodes of a turn, and what a turn recalls."""

from __future__ import annotations

from emily.bus.schemas.cognition import ObserveRequest
from emily.bus.schemas.memory import EpisodeIn
from emily.cognition.dialogue import turns
from emily.ids import uuid7


def test_the_user_turn_and_the_answer_are_linked_in_one_scope_and_session() -> None:
    req = ObserveRequest(text="What is my dog called?", user="ann", session="s-1", context={"a": 1})
    turn_id, answer_id = uuid7(), uuid7()
    user = EpisodeIn.model_validate(
        turns.user_turn(turn_id, req, "question", [0.1] * 384, "recall", "Rex.")
    )
    reply = EpisodeIn.model_validate(
        turns.assistant_turn(answer_id, turn_id, req, "Your dog's name is Rex.", "recall")
    )
    assert (user.role, user.act, user.user, user.session) == ("user", "question", "ann", "s-1")
    assert user.id == turn_id and user.context["a"] == 1 and user.embedding is not None
    assert (reply.role, reply.act, reply.reply_to, reply.session) == (
        "assistant",
        "answer",
        turn_id,
        "s-1",
    )
    assert reply.user == "ann" and reply.embedding is None  # memory embeds it


def test_a_turn_recalls_statements_or_the_assistants_answers_never_questions() -> None:
    plain, told = turns.recall_filters(False), turns.recall_filters(True)
    assert (plain.roles, plain.acts) == (["user"], ["statement"])
    assert (told.roles, told.acts) == (["assistant"], ["answer"])
    other = turns.recall_filters(False, "statement")
    assert (other.roles, other.acts) == (["user"], ["statement", "command"])


def test_feedback_alone_is_not_a_turn() -> None:
    assert turns.feedback_only(ObserveRequest(feedback="good"))
    assert not turns.feedback_only(ObserveRequest(text="thanks", feedback="good"))
    assert not turns.feedback_only(ObserveRequest(text="thanks"))
