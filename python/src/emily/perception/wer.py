"""Word error rate: the measure the tests and the benchmark hold transcripts to."""

from __future__ import annotations

import re
from collections.abc import Sequence

_NOT_WORD = re.compile(r"[^a-z0-9' ]+")
_NUMBERS = {
    "0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five",
    "6": "six", "7": "seven", "8": "eight", "9": "nine", "10": "ten",
}  # fmt: skip


def normalise(text: str) -> list[str]:
    """Lower-case words without punctuation, single digits spelled out
    (``"Platform 4."`` -> ``["platform", "four"]``)."""
    words = _NOT_WORD.sub(" ", text.lower().replace("-", " ")).split()
    return [_NUMBERS.get(w, w) for w in words]


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two word sequences (substitutions, insertions and
    deletions each cost 1)."""
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        diag, row[0] = row[0], i
        for j in range(1, len(hyp) + 1):
            cur = min(row[j] + 1, row[j - 1] + 1, diag + (ref[i - 1] != hyp[j - 1]))
            diag, row[j] = row[j], cur
    return row[len(hyp)]


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus word error rate: total edits over total reference words (0 is perfect;
    it can exceed 1 when the hypotheses insert words).

    Raises
    ------
    ValueError
        The two lists differ in length, or the references hold no word.
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    ref_words = [normalise(r) for r in refs]
    total = sum(len(r) for r in ref_words)
    if total == 0:
        raise ValueError("the references hold no word")
    edits = sum(edit_distance(r, normalise(h)) for r, h in zip(ref_words, hyps, strict=True))
    return edits / total
