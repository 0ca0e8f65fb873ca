"""Answers composed from facts and statements: templates, the choice of statement, and
the checks on what the language model returned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from emily.bus.schemas.facts import Fact
from emily.bus.schemas.memory import Affect, Episode, Hit
from emily.cognition.dialogue import answer
from emily.ids import uuid7

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def fact(subject: str, relation: str, value: str, *, superseded: bool = False) -> Fact:
    return Fact(
        id=uuid7(),
        user="ann",
        subject=subject,
        relation=relation,
        value=value,
        valid_from=T0,
        valid_to=T0 + timedelta(days=1) if superseded else None,
        sources=[uuid7()],
        count=1,
        last_seen=T0,
    )


def hit(text: str, score: float, day: int = 0, role: str = "user", act: str = "statement") -> Hit:
    ep = Episode.model_validate(
        {
            "id": uuid7(),
            "text": text,
            "timestamp": T0 + timedelta(days=day),
            "affect": Affect(),
            "context": {},
            "source": "cognition",
            "role": role,
            "act": act,
        }
    )
    return Hit(episode=ep, score=score, tier="L3")


def is_asking(text: str) -> bool:
    return text.rstrip().endswith("?")


def test_fact_sentences_address_the_user() -> None:
    assert answer.fact_sentence(fact("dog", "name", "Rex")) == "Your dog's name is Rex."
    assert answer.fact_sentence(fact("my dog", "name", "Rex")) == "Your dog's name is Rex."
    assert answer.fact_sentence(fact("me", "favourite_colour", "green")) == (
        "Your favourite colour is green."
    )
    assert answer.fact_sentence(fact("me", "lives_in", "Lyon")) == "You live in Lyon."
    assert answer.fact_sentence(fact("brother", "lives in", "Toronto")) == (
        "Your brother lives in Toronto."
    )


def test_a_superseded_fact_is_never_the_answer() -> None:
    old, new = fact("dog", "name", "Rex", superseded=True), fact("dog", "name", "Max")
    got = answer.template_answer([old, new], [], told=False)
    assert got.text == "Your dog's name is Max." and got.cited == [new.id] and got.kind == "fact"
    assert answer.template_answer([old], [], told=False).kind == "unknown"


def test_the_newest_of_the_best_statements_is_quoted() -> None:
    rex = hit("My dog is called Rex", 0.80, day=0)
    max_ = hit("My dog is now called Max", 0.75, day=3)
    far = hit("I like trains", 0.40, day=9)
    got = answer.template_answer([], [rex, max_, far], told=False)
    assert "Max" in got.text and got.cited == [max_.episode.id]
    assert answer.template_answer([], [hit("unrelated", 0.1)], told=False).kind == "unknown"


def test_questions_commands_and_the_other_role_are_not_usable() -> None:
    hits = [
        hit("What is my dog called?", 0.99, act="question"),
        hit("What is my dog called?", 0.98),  # stored before episodes carried their act
        hit("Set a timer", 0.9, act="command"),
        hit("Your dog's name is Rex.", 0.9, role="assistant", act="answer"),
        hit("My dog is called Rex", 0.8),
    ]
    assert [h.episode.text for h in answer.usable(hits, is_asking)] == ["My dog is called Rex"]
    told = answer.usable(hits, is_asking, role="assistant")
    assert [h.episode.text for h in told] == ["Your dog's name is Rex."]
    assert "I told you" in answer.template_answer([], told, told=True).text


def test_asking_what_the_assistant_said() -> None:
    assert answer.asks_what_i_said("What did you tell me about the heating?")
    assert answer.asks_what_i_said("what have you said about my dog")
    assert not answer.asks_what_i_said("What did I tell you about my sister?")


def test_compose_messages_cite_current_facts_then_statements_newest_first() -> None:
    old, new = fact("dog", "name", "Rex", superseded=True), fact("dog", "name", "Max")
    a, b = hit("My dog is called Rex", 0.8, day=0), hit("My dog is now called Max", 0.7, day=2)
    msgs, cited = answer.compose_messages("What is my dog called?", [old, new], [a, b], False)
    assert cited == [new.id, b.episode.id, a.episode.id]
    system = msgs[0].content
    assert "Max" in system and "Your dog's name is Rex." not in system
    assert msgs[-1].content == "What is my dog called?"


def test_checks_on_the_models_answer() -> None:
    facts = [fact("dog", "name", "Max")]
    assert answer.uses_fact("He is called Max.", facts)
    assert not answer.uses_fact("Your dog is called Rex.", facts)
    assert answer.uses_fact("anything", [])
    assert answer.parrots("What is my dog called?", "what is my dog called")
    assert answer.parrots("", "what is my dog called")
    assert not answer.parrots("Your dog is called Max.", "What is my dog called?")
