"""The versioned intent data set and its validation."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from emily.cognition.errors import ReflexDataError
from emily.cognition.reflex import data as rdata


def test_the_data_set_meets_the_issue() -> None:
    rows = rdata.load_intents()
    intents = {r.intent for r in rows} - {rdata.OOS}
    assert len(intents) >= 20
    assert sum(r.intent != rdata.OOS for r in rows) >= 400
    for intent in [*intents, rdata.OOS]:
        assert {r.split for r in rows if r.intent == intent} == {"train", "heldout"}
    for needed in ("greeting", "stop", "identity", "safety_weapons", "time", "date", "help"):
        assert needed in intents
    # hand-written: no duplicate utterances
    counts = Counter(r.text.lower() for r in rows)
    assert counts.most_common(1)[0][1] == 1


def test_the_data_set_is_versioned() -> None:
    meta = json.loads(rdata.data_path("intents.version").read_text())
    assert meta["version"] and meta["file"] == "intents.jsonl"


def test_every_intent_has_a_response() -> None:
    responses = rdata.load_responses()
    intents = {r.intent for r in rdata.load_intents()} - {rdata.OOS}
    assert intents <= set(responses)
    assert "{time}" not in responses["time"].render()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": "hi"}', "expected"),
        ("not json", "expected"),
        ('{"text": "", "intent": "a", "split": "train"}', "empty text"),
        ('{"text": "hi", "intent": "a", "split": "test"}', "train/heldout"),
    ],
)
def test_malformed_lines_are_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "intents.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ReflexDataError, match=message):
        rdata.load_intents(path)


def test_an_intent_without_heldout_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "intents.jsonl"
    path.write_text('{"text": "hi", "intent": "greeting", "split": "train"}\n')
    with pytest.raises(ReflexDataError, match="greeting"):
        rdata.load_intents(path)
