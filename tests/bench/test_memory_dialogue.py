"""bench/memory_dialogue.py: the conversation set it generates and how it scores answers."""

from __future__ import annotations

from tests.bench.helpers import bench_module

md = bench_module("memory_dialogue")


def test_the_set_has_300_statements_across_two_users_that_change_over_sessions() -> None:
    sessions, rounds = md.conversation(0)
    statements = [t for s in sessions for t in s if t.kind == "statement"]
    assert len(statements) >= 300
    assert {t.user for t in statements} == {"alice", "bob"}
    assert len({t.session for t in statements}) == len(sessions)
    # every probe's current value was said last by its user, and some values changed
    for probe in rounds[1]:
        said = [t.text for t in statements if t.user == probe.user and t.slot == probe.slot]
        assert probe.current in said[-1]
        assert probe.current not in probe.stale
        assert not set(probe.other) & ({probe.current} | set(probe.stale))
    assert all(p.stale for p in rounds[1])
    # questions are phrased unlike the statements
    texts = {t.text for t in statements}
    assert not {p.text for r in rounds for p in r} & texts


def test_the_set_is_the_same_for_a_seed() -> None:
    assert md.conversation(3) == md.conversation(3)
    assert md.conversation(3) != md.conversation(4)


def _probe() -> object:
    return md.Probe("alice", "dog name", "What is my dog's name?", "Max", ("Rex",), ("Rocky",))


def test_scoring_tells_current_stale_leaked_and_questioned_answers_apart() -> None:
    sc = md.Score()
    asked = {"What is my dog's name?"}
    sc.add(_probe(), "Your dog is called Max.", [], asked)
    sc.add(_probe(), "Your dog is called Rex.", [], asked)
    sc.add(_probe(), "I think it is Rocky.", [], asked)
    sc.add(_probe(), "What is my dog's name?", [], asked)
    sc.add(_probe(), "I do not know.", ["Max"], asked)
    sc.add(_probe(), "Maxwell told me.", [], asked)  # a word match, not a substring
    assert (sc.n, sc.correct, sc.stale, sc.leaks, sc.questioned) == (6, 2, 1, 1, 1)
