"""A conversation memory as a person uses it: facts that change, two users, questions.

Generates a multi-session conversation set from ``bench/data/memory_dialogue.json``
(25 facts per user, each stated and then updated or contradicted over six sessions:
300 statements across two users, with distractors and asides mixed in), drives it
through cognition as deployed (``emily serve memory`` with an embedded Postgres and
``emily serve cognition``, each in its own process, peers on loopback Zenoh; with
``--llm`` also ``emily serve inference`` with the bundled Gemma 3 270M), and asks
about every fact in a new session, twice per question, with questions phrased unlike
the statements: once halfway through (after session 3) and once at the end.

For every answer it checks, by word match on the fact's values:

- **current-fact accuracy**: the answer, or its top cited fact, holds the current value;
- **stale**: an earlier (superseded) value is given and the current one is not;
- **cross-user leaks**: the other user's value for that fact appears;
- **answered with a question**: the answer repeats a question or cites one.

The same-run baseline is the naive memory: the nearest stored episode by MiniLM cosine
over everything said so far (questions included, both users), given as the answer.
It also prints p50/p99 of the recall stage of the question cycles and of consolidation
per episode (``memory/consolidate`` after each session, when memory serves it).

    .venv/bin/python bench/memory_dialogue.py [--llm] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from cognition_common import bus_env, inference_env, process, serve_cmd
from common import free_port, load_line, pcts, table

from emily.bus import BusConfig, Keys, open_session
from emily.bus.endpoints import CHAT, CONSOLIDATE, OBSERVE, RECALL, STATS
from emily.bus.rpc import RequestFailed, wait_for_server
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from emily.bus.schemas.facts import ConsolidateRequest
from emily.bus.schemas.memory import StatsRequest
from emily.embed import Embedder
from emily.memory.embedded import EmbeddedPostgres

DATA = Path(__file__).resolve().parent / "data" / "memory_dialogue.json"
TARGETS = {"accuracy": 0.9, "stale": 0.02, "leaks": 0, "questioned": 0}


@dataclass(frozen=True)
class Turn:
    """One utterance of the conversation set."""

    user: str
    session: str
    text: str
    kind: str  # statement, distractor, aside, question
    slot: str = ""


@dataclass(frozen=True)
class Probe:
    """A question about one fact, with what its answer must and must not say."""

    user: str
    slot: str
    text: str
    current: str
    stale: tuple[str, ...]
    other: tuple[str, ...]


@dataclass
class Score:
    """Tallies of one answerer over the probes."""

    n: int = 0
    correct: int = 0
    stale: int = 0
    leaks: int = 0
    questioned: int = 0
    examples: list[str] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)

    def add(self, probe: Probe, answer: str, cited: Sequence[str], asked: set[str]) -> None:
        """Score ``answer`` (and the values of its cited facts, best first)."""
        self.n += 1
        said = answer + " " + (cited[0] if cited else "")
        ok = _holds(said, probe.current)
        self.correct += ok
        if not ok and any(_holds(answer, v) for v in probe.stale):
            self.stale += 1
        if any(_holds(said, v) for v in probe.other):
            self.leaks += 1
            self.leaked.append(f"{probe.user}: {probe.text!r} -> {said[:120]!r}")
        if any(q.lower() in answer.lower() for q in asked) or answer.strip().endswith("?"):
            self.questioned += 1
        if not ok and len(self.examples) < 5:
            self.examples.append(f"{probe.user}: {probe.text!r} -> {answer[:90]!r}")

    def row(self, name: str) -> list[object]:
        """A table row: name, accuracy, stale share, leaks, questions, n."""
        n = max(self.n, 1)
        return [
            name,
            f"{self.correct / n:.3f}",
            f"{self.stale / n:.1%}",
            self.leaks,
            self.questioned,
            self.n,
        ]


def _holds(text: str, value: str) -> bool:
    return re.search(rf"\b{re.escape(value)}\b", text, re.IGNORECASE) is not None


def conversation(seed: int = 0) -> tuple[list[list[Turn]], list[list[Probe]]]:
    """The sessions (each a list of turns) and the probe rounds (halfway, at the end)."""
    data = json.loads(DATA.read_text(encoding="utf-8"))
    rng = random.Random(seed)
    users: list[str] = data["users"]
    plan: list[int] = data["plan"]
    sessions: list[list[Turn]] = []
    rounds: list[list[Probe]] = [[], []]
    halfway = len(plan) // 2
    for step in range(len(plan)):
        for u, user in enumerate(users):
            sid = f"{user}-s{step + 1}"
            turns: list[Turn] = []
            for slot in data["slots"]:
                mine = slot["values"][u * 4 : u * 4 + 4]
                value = mine[plan[step]]
                template = slot["first"] if step == 0 else slot["update"]
                turns.append(Turn(user, sid, template.format(v=value), "statement", slot["slot"]))
            turns += [Turn(user, sid, t, "distractor") for t in rng.sample(data["distractors"], 2)]
            turns += [Turn(user, sid, t, "aside") for t in rng.sample(data["asides"], 1)]
            rng.shuffle(turns)
            sessions.append(turns)
        if step + 1 in (halfway, len(plan)):
            r = 0 if step + 1 == halfway else 1
            for u, user in enumerate(users):
                for slot in data["slots"]:
                    mine = slot["values"][u * 4 : u * 4 + 4]
                    said = [mine[i] for i in plan[: step + 1]]
                    theirs = slot["values"][(1 - u) * 4 : (1 - u) * 4 + 4]
                    for question in slot["questions"]:
                        rounds[r].append(
                            Probe(
                                user,
                                slot["slot"],
                                question,
                                said[-1],
                                tuple(v for v in dict.fromkeys(said) if v != said[-1]),
                                tuple(theirs),
                            )
                        )
    return sessions, rounds


class Naive:
    """The baseline: the nearest episode over everything said, by MiniLM cosine."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.texts: list[str] = []
        self.vecs: list[np.ndarray] = []

    def hear(self, texts: Sequence[str]) -> None:
        """Remember ``texts`` as today's memory would (every utterance an episode)."""
        self.texts += list(texts)
        self.vecs += list(self.embedder.embed(list(texts)))

    def answer(self, question: str) -> str:
        """The nearest remembered text to ``question`` (before storing the question)."""
        q = self.embedder.embed([question])[0]
        best = int(np.argmax(np.stack(self.vecs) @ q))
        return self.texts[best]


def _cited(reply: ObserveReply) -> list[str]:
    """Values of the facts the answer cites, best first (none when the trace has none)."""
    facts = reply.trace.model_dump().get("facts") or []
    return [str(f.get("value", "")) for f in facts if isinstance(f, dict)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", action="store_true", help="answer with the LLM too")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    sessions, rounds = conversation(args.seed)
    n_statements = sum(t.kind == "statement" for s in sessions for t in s)
    print(load_line("at start"))
    print(
        f"{len(sessions)} sessions, {n_statements} statements of "
        f"{len(rounds[0]) // 2} facts across two users; "
        f"{sum(len(r) for r in rounds) * 2} question cycles"
    )
    root = Path(tempfile.mkdtemp(prefix="memory-dialogue-"))
    state, node = root / "state", "bench"
    mem_ep, inf_ep, cog_ep = (f"tcp/127.0.0.1:{free_port()}" for _ in range(3))
    pg = EmbeddedPostgres(root / "pg")
    client = open_session(BusConfig(node=node, listen=(), connect=(mem_ep, inf_ep, cog_ep)))
    keys = Keys(node)
    memory_env = bus_env(
        mem_ep, node, state, (inf_ep,), EMILY_MEMORY__DSN=pg.dsn, EMILY_MEMORY__METRICS_PORT="0"
    )
    cognition_env = bus_env(
        cog_ep, node, state, (mem_ep, inf_ep), EMILY_COGNITION__HTTP_PORT=str(free_port())
    )
    infer_env = inference_env(
        inf_ep, node, state, root / "models", (mem_ep,), n_ctx=2048, max_tokens=48
    )
    naive = Naive(Embedder())
    system = [Score(), Score()]
    base = [Score(), Score()]
    llm = Score()
    recall_ms: list[float] = []
    consolidate_ms: list[float] = []
    consolidation = "not served"
    try:
        from contextlib import ExitStack

        with ExitStack() as stack:
            stack.enter_context(process(serve_cmd("memory"), memory_env, client, RECALL.key(keys)))
            if args.llm:
                stack.enter_context(
                    process(serve_cmd("inference"), infer_env, client, CHAT.key(keys))
                )
            stack.enter_context(
                process(serve_cmd("cognition"), cognition_env, client, OBSERVE.key(keys))
            )
            _wait_for_memory(client, keys)
            served = wait_for_server(client, CONSOLIDATE.key(keys), timeout_s=5)
            asked: set[str] = set()
            step = 0

            def observe(text: str, user: str, session: str, allow_llm: bool) -> ObserveReply:
                req = ObserveRequest(text=text, user=user, session=session, allow_llm=allow_llm)
                return OBSERVE.call(client, keys, req, timeout_s=120)

            def probe_round(r: int) -> None:
                for i, probe in enumerate(rounds[r]):
                    sid = f"{probe.user}-q{r}-{i}"
                    base[r].add(probe, naive.answer(probe.text), [], asked)
                    for _ in range(2):  # asked twice: the second must not parrot the first
                        reply = observe(probe.text, probe.user, sid, allow_llm=False)
                        system[r].add(probe, reply.response, _cited(reply), asked)
                        if "recall" in reply.trace.latencies_ms:
                            recall_ms.append(reply.trace.latencies_ms["recall"])
                    naive.hear([probe.text, probe.text])
                    asked.add(probe.text)
                    if args.llm and r == 1:
                        reply = observe(probe.text, probe.user, sid, allow_llm=True)
                        llm.add(probe, reply.response, _cited(reply), asked)

            for s, turns in enumerate(sessions):
                for turn in turns:
                    observe(turn.text, turn.user, turn.session, allow_llm=False)
                    if turn.kind == "aside":
                        asked.add(turn.text)
                naive.hear([t.text for t in turns])
                _settle(client, keys)
                if served:
                    t0 = time.perf_counter()
                    done = CONSOLIDATE.call(client, keys, ConsolidateRequest(), timeout_s=600)
                    took = (time.perf_counter() - t0) * 1e3
                    if done.episodes:
                        consolidate_ms.append(took / done.episodes)
                    consolidation = "on demand after each session"
                if (s + 1) % 2 == 0:  # both users finished a step
                    step += 1
                    if step == 3:
                        probe_round(0)
            probe_round(1)
    finally:
        client.close()  # type: ignore[no-untyped-call]
        pg.stop()
    rows = [system[0].row("memory, halfway"), base[0].row("naive, halfway")]
    rows += [system[1].row("memory, at the end"), base[1].row("naive, at the end")]
    if args.llm:
        rows.append(llm.row("memory + LLM, at the end"))
    print()
    print(table(["answerer", "current-fact acc", "stale", "leaks", "questioned", "n"], rows))
    total = Score()
    for sc in system:
        for k in ("n", "correct", "stale", "leaks", "questioned"):
            setattr(total, k, getattr(total, k) + getattr(sc, k))
    ntot = max(total.n, 1)
    naive_acc = sum(b.correct for b in base) / max(sum(b.n for b in base), 1)
    acc = total.correct / ntot
    print(
        f"\nmemory: accuracy {acc:.3f} (target >= {TARGETS['accuracy']}), "
        f"stale {total.stale / ntot:.1%} (target <= {TARGETS['stale']:.0%}), "
        f"leaks {total.leaks} (target 0), answered with a question {total.questioned} (target 0)"
    )
    print(f"naive baseline accuracy {naive_acc:.3f}; ratio {acc / max(naive_acc, 1e-9):.2f}x")
    if recall_ms:
        print(f"recall stage of question cycles: {pcts(recall_ms, 2)}")
    if consolidate_ms:
        print(f"consolidation per episode ({consolidation}): {pcts(consolidate_ms, 3)}")
    else:
        print(f"consolidation: {consolidation}")
    for sc in system:
        for ex in sc.examples:
            print(f"  missed: {ex}")
        for ex in sc.leaked[:5]:
            print(f"  leaked: {ex}")
    if args.json:
        print(
            json.dumps(
                {
                    "accuracy": acc,
                    "stale": total.stale / ntot,
                    "leaks": total.leaks,
                    "questioned": total.questioned,
                    "naive_accuracy": naive_acc,
                    "n": total.n,
                    "llm_accuracy": llm.correct / llm.n if llm.n else None,
                }
            )
        )
    print(load_line("at end"))


def _wait_for_memory(client: Any, keys: Keys) -> None:
    """Until cognition answers with memory present (it follows liveliness tokens)."""
    deadline = time.monotonic() + 60
    while True:
        req = ObserveRequest(
            text="hello there", session=f"warm-{uuid.uuid4().hex}", allow_llm=False
        )
        reply = OBSERVE.call(client, keys, req, timeout_s=60)
        if "memory" not in reply.trace.missing:
            return
        if time.monotonic() > deadline:
            raise SystemExit("cognition never saw the memory service")
        time.sleep(0.2)


def _settle(client: Any, keys: Keys) -> None:
    """Until memory's episode count stops growing (cognition stores in the background)."""
    last, still = -1, 0
    while still < 3:
        try:
            n = STATS.call(client, keys, StatsRequest(), timeout_s=10).episodes
        except RequestFailed:
            n = last
        still = still + 1 if n == last else 0
        last = n
        time.sleep(0.1)


if __name__ == "__main__":
    main()
