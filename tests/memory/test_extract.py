"""The deterministic extractor: normalisation, refusals, and held-out precision/recall.

``data/facts_train.jsonl`` holds the utterances the patterns were written against;
``data/facts_heldout.jsonl`` was written separately, in other phrasings, and is only
scored here.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from emily.memory.extract import ME, Triple, extract

DATA = Path(__file__).parent / "data"


def _score(name: str) -> tuple[float, float]:
    tp = fp = fn = 0
    for line in (DATA / name).read_text().splitlines():
        case = json.loads(line)
        want = {tuple(term.casefold() for term in fact) for fact in case["facts"]}
        got = {t.key() for t in extract(case["text"])}
        tp += len(want & got)
        fp += len(got - want)
        fn += len(want - got)
    return tp / max(1, tp + fp), tp / max(1, tp + fn)


def test_the_phrasings_of_a_name_give_one_subject_and_relation() -> None:
    said = ["My dog is called Rex.", "my dog's name is Rex", "I have a dog named Rex"]
    for text in said:
        assert Triple("dog", "name", "Rex") in extract(text), text


def test_moving_and_living_are_one_relation() -> None:
    assert extract("I live in Lisbon") == [Triple(ME, "lives_in", "Lisbon")]
    assert extract("I moved to Porto last year.") == [Triple(ME, "lives_in", "Porto")]


def test_a_person_named_in_passing_gets_both_facts() -> None:
    assert extract("My sister Ana lives in Paris.") == [
        Triple("sister", "name", "Ana"),
        Triple("sister", "lives_in", "Paris"),
    ]


def test_spelling_variants_fold_and_multi_valued_relations_are_marked() -> None:
    assert extract("my favorite color is blue") == [Triple(ME, "favourite_colour", "blue")]
    (allergy,) = extract("I'm allergic to peanuts")
    assert allergy == Triple(ME, "allergic_to", "peanuts") and allergy.multi
    assert not Triple("dog", "name", "Rex").multi


def test_questions_negations_and_chatter_give_nothing() -> None:
    for text in [
        "What is my dog called?",
        "Where do I live",
        "I don't live in Lisbon anymore.",
        "I am not allergic to cats",
        "My dog is tired today.",
        "The weather is nice.",
    ]:
        assert extract(text) == [], text


def test_training_set_is_extracted_exactly() -> None:
    assert _score("facts_train.jsonl") == (1.0, 1.0)


def test_held_out_precision_and_recall() -> None:
    precision, recall = _score("facts_heldout.jsonl")
    assert precision >= 0.9, precision
    assert recall >= 0.85, recall


@given(st.text(max_size=300))
def test_any_text_extracts_without_error_and_no_empty_terms(text: str) -> None:
    for triple in extract(text):
        assert triple.subject and triple.relation and triple.value
