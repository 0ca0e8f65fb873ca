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

Then (unless ``--no-query``) the fact query, on the slots of
``bench/data/memory_dialogue.json``: for two users, each slot is stated with one value
and later updated to another, through the real memory (embedded Postgres, MiniLM) and
one consolidation pass per statement. Every question of every slot is then asked:

- ``facts (hybrid)``: ``memory/facts`` as served (vector, full text and graph, fused);
- ``facts (vector only)``: the same facts ranked by cosine alone;
- ``nearest statement`` (baseline, the memory without facts): the user's nearest
  statement episode.

Reported per method: current-value accuracy at top 1, stale answers (the superseded
value at top 1), cross-user answers, and p50/p99 latency; and p50/p99 of one
consolidation pass per statement.

Usage::

    .venv/bin/python bench/memory_facts.py [--no-query]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
from common import OUT, load_line, pcts, table
from memory_common import T0, embedded_postgres, fresh_db

from emily.bus.schemas.facts import FactsRequest
from emily.bus.schemas.memory import EpisodeIn, StoreRequest
from emily.embed import Embedder
from emily.memory import facts
from emily.memory.config import MemoryConfig
from emily.memory.consolidate import Consolidator
from emily.memory.core import Memory
from emily.memory.extract import extract
from emily.memory.store import PgStore

DATA = Path(__file__).resolve().parent.parent / "tests" / "memory" / "data"
DIALOGUE = Path(__file__).resolve().parent / "data" / "memory_dialogue.json"
USERS = ("alice", "bob")
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


def extraction_table() -> str:
    """The precision/recall table of both extractors on both sets."""
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
    return table([*header, "µs/utt"], rows)


@dataclass
class Tally:
    """Answers of one method: right (current value), stale, from another user; ms each."""

    right: int = 0
    stale: int = 0
    leaks: int = 0
    ms: list[float] = field(default_factory=list)


def _vector_only(memory: Memory, user: str, query: np.ndarray) -> tuple[str, str] | None:
    """(user, value) of the current fact nearest to ``query`` by cosine alone."""
    with memory.store.connection() as conn:
        row = conn.execute(
            "SELECT user_name, value FROM facts WHERE user_name = %s AND valid_to IS NULL "
            "ORDER BY embedding <=> %s LIMIT 1",
            (user, query),
        ).fetchone()
    return None if row is None else (row[0], row[1])


def _nearest_statement(memory: Memory, user: str, query: np.ndarray) -> tuple[str, str] | None:
    """(user, text) of the user's statement episode nearest to ``query``."""
    with memory.store.connection() as conn:
        row = conn.execute(
            "SELECT user_name, text FROM episodes WHERE user_name = %s AND role = 'user' "
            "AND act = 'statement' ORDER BY (embedding <=> %s) + 0 LIMIT 1",
            (user, query),
        ).fetchone()
    return None if row is None else (row[0], row[1])


def query_table() -> str:
    """Consolidate the dialogue slots for two users, then score every question."""
    slots = json.loads(DIALOGUE.read_text())["slots"]
    pg = embedded_postgres("memory_facts")
    dsn = fresh_db(pg.dsn, "memory_facts")
    cfg = MemoryConfig(state=OUT / "memory_facts_state", search_index="postgres", hnsw_m=8)
    embedder = Embedder()
    memory = Memory(cfg, PgStore(dsn, cfg), embedder)
    consolidator = Consolidator(memory)
    expect: dict[tuple[str, int], tuple[str, str]] = {}  # (user, slot) -> (current, old)
    passes: list[float] = []
    hour = 0
    for phase in ("first", "update"):
        for u, user in enumerate(USERS):
            for i, slot in enumerate(slots):
                old = slot["values"][(i + u) % len(slot["values"])]
                new = slot["values"][(i + u + 3) % len(slot["values"])]
                value = old if phase == "first" else new
                expect[(user, i)] = (new, old)
                hour += 1
                ep = EpisodeIn(
                    text=slot[phase].format(v=value),
                    user=user,
                    timestamp=T0 + timedelta(hours=hour),
                )
                memory.store_episodes(StoreRequest(episodes=[ep]))
                start = time.perf_counter()
                consolidator.run()
                passes.append((time.perf_counter() - start) * 1000)
    methods = ("facts (hybrid)", "facts (vector only)", "nearest statement (baseline)")
    tally = {m: Tally() for m in methods}
    misses: list[str] = []
    asked = 0
    for (user, i), (new, old) in expect.items():
        for question in slots[i]["questions"]:
            asked += 1
            start = time.perf_counter()
            got = facts.answer(memory.store, embedder, FactsRequest(text=question, user=user))
            hybrid = (got.facts[0].user, got.facts[0].value) if got.facts else None
            ms_hybrid = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            q = embedder.embed([question])[0]
            vector = _vector_only(memory, user, q)
            ms_vector = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            nearest = _nearest_statement(memory, user, embedder.embed([question])[0])
            ms_nearest = (time.perf_counter() - start) * 1000
            for method, answer, ms in zip(
                methods, (hybrid, vector, nearest), (ms_hybrid, ms_vector, ms_nearest), strict=True
            ):
                t = tally[method]
                t.ms.append(ms)
                if answer is None:
                    continue
                who, text = answer
                words = set(re.findall(r"[\w']+", text.casefold()))
                has_new = set(new.casefold().split()) <= words
                has_old = set(old.casefold().split()) <= words
                t.leaks += who != user
                t.right += has_new
                t.stale += has_old and not has_new
                if not has_new and method == methods[0]:
                    misses.append(f"  {user}: {question!r} -> {text!r} (current: {new!r})")
    memory.close()
    rows = [
        [m, asked, f"{t.right / asked:.3f}", f"{t.stale / asked:.3f}", t.leaks, pcts(t.ms, 1)]
        for m, t in tally.items()
    ]
    ratio = tally[methods[0]].right / max(1, tally[methods[2]].right)
    out = table(["method", "questions", "current", "stale", "leaks", "latency"], rows)
    return (
        f"{out}\nratio hybrid/baseline current-value accuracy: {ratio:.2f}\n"
        f"consolidation pass per statement: {pcts(passes, 1)}\n"
        f"hybrid answers without the current value ({len(misses)}):\n" + "\n".join(misses)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-query", action="store_true", help="extraction only")
    args = parser.parse_args()
    print(load_line("start"))
    print(extraction_table())
    if not args.no_query:
        print()
        print(query_table())
    print(load_line("end"))


if __name__ == "__main__":
    main()
