"""The dialogue-act classifier: trained on the package's data, scored on a held-out set
written separately (tests/cognition/dialogue/acts_heldout.jsonl, no shared utterance)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emily.cognition.dialogue.acts import (
    ACTS,
    N_CUES,
    ActClassifier,
    DialogueDataError,
    LazyActs,
    cues,
    load_labelled,
)
from emily.cognition.reflex import MiniLMFeatures
from emily.cognition.reflex.features import normalise_text

HELDOUT = Path(__file__).with_name("acts_heldout.jsonl")


@pytest.fixture(scope="module")
def trained(embedder: MiniLMFeatures) -> ActClassifier:
    return ActClassifier.train(load_labelled(), embedder.embed)


def accuracy(model: ActClassifier, embedder: MiniLMFeatures | None) -> float:
    rows = load_labelled(HELDOUT)
    vecs = embedder.embed([r.text for r in rows]) if embedder is not None else [None] * len(rows)
    right = [model.classify(r.text, v).act == r.act for r, v in zip(rows, vecs, strict=True)]
    return sum(right) / len(right)


def test_heldout_shares_no_utterance_with_training_and_covers_every_act() -> None:
    train = {normalise_text(r.text) for r in load_labelled()}
    held = load_labelled(HELDOUT)
    assert not train & {normalise_text(r.text) for r in held}
    assert {r.act for r in held} == set(ACTS)
    assert min(sum(r.act == a for r in held) for a in ACTS) >= 30


def test_heldout_accuracy_with_the_embedding_and_with_the_cues_alone(
    trained: ActClassifier, embedder: MiniLMFeatures
) -> None:
    full, cues_only = accuracy(trained, embedder), accuracy(trained, None)
    print(f"held-out dialogue-act accuracy: {full:.3f} (embedding+cues), {cues_only:.3f} (cues)")
    assert full >= 0.9 and cues_only >= 0.85


def test_a_question_without_a_question_mark_and_a_polite_command(
    trained: ActClassifier, embedder: MiniLMFeatures
) -> None:
    texts = {
        "what is my dog called": "question",
        "could you tell me where I left my keys": "question",
        "please turn the lights off": "command",
        "my dog is called Rex": "statement",
    }
    vecs = embedder.embed(list(texts))
    for (text, act), vec in zip(texts.items(), vecs, strict=True):
        guess = trained.classify(text, vec)
        assert guess.act == act and guess.used_embedding, (text, guess)
        assert trained.classify(text).act == act and not trained.classify(text).used_embedding


def test_cues_are_bounded_features() -> None:
    for text in ("", "?", "What's up?", "x " * 100):
        c = cues(text)
        assert c.shape == (N_CUES,) and np.all((c >= 0) & (c <= 1))


def test_the_model_is_cached_and_reloaded(tmp_path: Path, embedder: MiniLMFeatures) -> None:
    first = ActClassifier.load_or_train(tmp_path, embedder.embed, embedder.cache_tag)
    assert len(list(tmp_path.glob("acts-*.npz"))) == 1
    again = ActClassifier.load_or_train(tmp_path, None, embedder.cache_tag)
    assert again.full is not None
    np.testing.assert_array_equal(first.cues_only.w, again.cues_only.w)
    assert LazyActs(None).get().full is None  # without MiniLM: the cues model only


def test_bad_training_data_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "acts.jsonl"
    bad.write_text('{"text": "hello", "act": "greeting"}\n', encoding="utf-8")
    with pytest.raises(DialogueDataError, match="act not one of"):
        load_labelled(bad)
    with pytest.raises(DialogueDataError, match="every act"):
        ActClassifier.train(load_labelled(HELDOUT)[:3], None)
