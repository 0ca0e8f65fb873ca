"""Fact extraction: precision and recall of the deterministic extractor on utterances.

Two sets: ``tests/memory/data/facts_train.jsonl`` (the phrasings the patterns were
written against) and ``tests/memory/data/facts_heldout.jsonl`` (written separately, in
other phrasings, never used to write the patterns). Each line is an utterance and the
facts a person reads in it. Same run, same data:

- ``patterns``: :func:`emily.memory.extract.extract`, as consolidation runs it;
- ``copula`` (baseline): the naive reading, ``my X is Y`` as ``(X, is, Y)`` and
  ``I <verb> <prep> Y`` as ``(me, <verb>_<prep>, Y)``, with no normalisation and no
  refusals.

A fact counts when subject, relation and value all match (case-folded). Reported:
precision, recall and F1 per set and extractor, value recall (the value was found with
any subject and relation: what the baseline gets without normalising), and the ratio
patterns / copula of F1 and of value recall.

Usage::

    .venv/bin/python bench/memory_facts.py
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

from common import load_line, table

from emily.memory.extract import extract

DATA = Path(__file__).resolve().parent.parent / "tests" / "memory" / "data"
Facts = set[tuple[str, str, str]]


def copula(text: str) -> Facts:
    """The baseline: the surface reading of a copula or a first-person verb phrase."""
    text = text.strip().rstrip(".!?")
    m = re.fullmatch(r"(?i)my (.+?) is (.+)", text)
    if m:
        return {(m[1].casefold(), "is", m[2].casefold())}
    m = re.fullmatch(r"(?i)i (\w+) (in|at|for|to) (.+)", text)
    if m:
        return {("me", f"{m[1]}_{m[2]}".casefold(), m[3].casefold())}
    return set()


def patterns(text: str) -> Facts:
    return {t.key() for t in extract(text)}


def score(name: str, fn: Callable[[str], Facts]) -> tuple[float, float, float, float, int, float]:
    """Precision, recall, F1, value recall (the value found, whatever subject and relation
    it came with), utterances and mean µs per utterance of ``fn`` on a set."""
    tp = fp = fn_ = n = values = wanted = 0
    took = 0.0
    for line in (DATA / name).read_text().splitlines():
        case = json.loads(line)
        want = {tuple(term.casefold() for term in fact) for fact in case["facts"]}
        start = time.perf_counter()
        got = fn(case["text"])
        took += time.perf_counter() - start
        tp += len(want & got)
        fp += len(got - want)
        fn_ += len(want - got)
        values += len({v for _, _, v in want} & {v for _, _, v in got})
        wanted += len({v for _, _, v in want})
        n += 1
    p, r = tp / max(1, tp + fp), tp / max(1, tp + fn_)
    return p, r, 2 * p * r / max(1e-9, p + r), values / max(1, wanted), n, took / n * 1e6


def main() -> None:
    print(load_line("start"))
    rows = []
    for name in ("facts_train.jsonl", "facts_heldout.jsonl"):
        base = score(name, copula)
        ours = score(name, patterns)
        for label, (p, r, f1, vr, n, us) in (("copula (baseline)", base), ("patterns", ours)):
            rows.append(
                [name, label, n, f"{p:.3f}", f"{r:.3f}", f"{f1:.3f}", f"{vr:.3f}", f"{us:.0f}"]
            )
        f1_ratio = f"{ours[2] / base[2]:.2f}" if base[2] else "baseline 0"
        vr_ratio = f"{ours[3] / base[3]:.2f}" if base[3] else "baseline 0"
        rows.append([name, "ratio patterns/copula", "", "", "", f1_ratio, vr_ratio, ""])
    header = ["set", "extractor", "utterances", "precision", "recall", "F1", "value recall"]
    print(table([*header, "µs/utt"], rows))
    print(load_line("end"))


if __name__ == "__main__":
    main()
