"""Spiking spreading activation against memory's graph walk, as the graph step of recall.

Memory answers ``memory/facts`` by fusing three rankings of a user's facts by reciprocal
rank: cosine, full text, and the entity graph walked from the entities the question
names (:func:`emily.memory.graph.neighbourhood`, a recursive CTE in Postgres, nearest
hop first). This benchmark asks whether
:func:`emily.cognition.neural.spiking_graph.spread_activation` (one LIF neuron per
entity, spikes spreading over the same edges) is a better graph step.

Data, through the real memory (embedded Postgres, MiniLM, one consolidation pass per
statement): for two users, the first statement of every slot of
``bench/data/memory_dialogue.json`` (facts about the speaker) and eight people each
("My sister Ana lives in Paris.", "My sister works at Siemens."), the cities drawn from
a short list so that people share city nodes, and half of the people move later
("My sister moved to Rome.", which supersedes the first city). Associative questions
then ask for a neighbour of a named entity: "Where does Ana live?" (two hops:
``ana - sister - city``), "Where does my sister work?" (one hop). The right answer is
the current fact ``(kin, relation, value)``.

Graph steps compared in the same run, on the same graph, the same questions and the
same query vectors:

- ``walk``: ``neighbourhood`` as memory runs it (hops ≤ 2, the speaker not walked through);
- ``walk depth 1``: the same walk stopped one hop from the named entities (the
  control for a spread too short to reach a second hop);
- ``spiking T=n``: the user's entities and edges read from Postgres, one LIF neuron per
  entity, a seed current into the entities the question names, spikes spreading over
  the edges for ``n`` steps (the speaker's spikes not propagated, as the walk does not
  walk through it); facts ranked by the earliest first spike of their entities, then by
  spike count; ``+recency`` breaks the remaining ties by last seen, as the walk does;
- ``none``: no graph step (vector and full text only).

Each is scored alone (the graph ranking itself), as the third ranking inside
``facts.query`` (the served fusion), and inside hybrid episode recall
(``Memory.recall`` with ``search="hybrid"``, whose graph source calls the same
function); the graph function is swapped for each run. Reported: recall@1 and @5 of the
right fact (or of an episode that states it), per question kind too; latency per query
(p50/p95/p99); ratios to ``walk``; and for ``spiking`` spikes, synaptic operations and
modelled energy per run (Horowitz 45 nm, fp32 AC; modelled, not measured).

Usage::

    .venv/bin/python bench/memory_spreading.py [--steps 4,8] [--gain 1.0] [--seed-current 1.5]
"""

from __future__ import annotations

import argparse
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import OUT, load_line, pcts, table
from memory_common import T0, embedded_postgres, fresh_db

from emily.bus.schemas.facts import FactsRequest
from emily.bus.schemas.memory import EpisodeIn, RecallRequest, StoreRequest
from emily.cognition.neural.energy import OpCounts
from emily.cognition.neural.spiking_graph import spread_activation
from emily.embed import Embedder
from emily.memory import facts, graph
from emily.memory.config import MemoryConfig
from emily.memory.consolidate import Consolidator
from emily.memory.core import Memory
from emily.memory.extract import ME
from emily.memory.store import PgStore

DIALOGUE = Path(__file__).resolve().parent / "data" / "memory_dialogue.json"
KIN = ("sister", "brother", "friend", "aunt", "uncle", "cousin", "neighbour", "colleague")
NAMES = {
    "alice": ("Ana", "Tomas", "Marco", "Greta", "Pavel", "Ines", "Jorge", "Hana"),
    "bob": ("Lena", "Otto", "Rui", "Maya", "Emil", "Sofia", "Karl", "Nora"),
}
CITIES = ("Paris", "Rome", "Kyoto", "Quito", "Accra")
EMPLOYERS = (
    "Siemens",
    "Oxfam",
    "Ikea",
    "Nokia",
    "Unicef",
    "Lego",
    "Airbus",
    "Philips",
    "Bosch",
    "Roche",
)
Ranking = list[tuple[uuid.UUID, int]]
GraphFn = Callable[..., Ranking]


@dataclass(frozen=True)
class Question:
    user: str
    text: str
    subject: str
    relation: str
    value: str
    kind: str  # "name" (two hops: name - kin - value) or "kin" (one hop)


def people(user: str, u: int) -> tuple[list[str], list[str], list[Question]]:
    """First statements, later statements (moves), and the questions of ``user``."""
    first: list[str] = []
    later: list[str] = []
    questions: list[Question] = []
    for i, (kin, name) in enumerate(zip(KIN, NAMES[user], strict=True)):
        city = CITIES[(i + u) % len(CITIES)]
        employer = EMPLOYERS[(i + 3 * u) % len(EMPLOYERS)]
        first.append(f"My {kin} {name} lives in {city}.")
        first.append(f"My {kin} works at {employer}.")
        if i % 2:
            city = CITIES[(i + u + 2) % len(CITIES)]
            later.append(f"My {kin} moved to {city}.")
        for text, relation, value, kind in (
            (f"Where does {name} live?", "lives_in", city, "name"),
            (f"Where does {name} work?", "works_at", employer, "name"),
            (f"Where does my {kin} live?", "lives_in", city, "kin"),
            (f"Where does my {kin} work?", "works_at", employer, "kin"),
        ):
            questions.append(Question(user, text, kin, relation, value.casefold(), kind))
    return first, later, questions


@dataclass
class SpikingGraph:
    """:func:`spread_activation` as a drop-in for :func:`graph.neighbourhood`."""

    steps: int
    gain: float
    seed_current: float
    recency: bool = False
    counts: list[OpCounts] = field(default_factory=list)
    spread_ms: list[float] = field(default_factory=list)

    def __call__(
        self,
        conn: Any,
        user: str,
        text: str,
        *,
        limit: int,
        agent: str | None = None,
        history: bool = False,
        depth: int = graph.DEPTH,
    ) -> Ranking:
        del depth  # the spike dynamics, not a hop count, decide how far activation goes
        names = set(graph.names_in(text))
        if not names:
            return []
        nodes = conn.execute(
            "SELECT id, name FROM entities WHERE user_name = %s ORDER BY id", (user,)
        ).fetchall()
        edges = conn.execute(
            "SELECT e.fact_id, e.src, e.dst, f.valid_to IS NULL, f.agent_name, "
            "extract(epoch FROM f.last_seen) "
            "FROM edges e JOIN facts f ON f.id = e.fact_id WHERE f.user_name = %s",
            (user,),
        ).fetchall()
        index = {int(row[0]): k for k, row in enumerate(nodes)}
        n = len(nodes)
        seeds = [index[int(row[0])] for row in nodes if row[1] in names and row[1] != ME]
        if not seeds or not edges:
            return []
        me = {index[int(row[0])] for row in nodes if row[1] == ME}
        src = torch.tensor([index[int(e[1])] for e in edges])
        dst = torch.tensor([index[int(e[2])] for e in edges])
        rows = torch.cat([src, dst])
        cols = torch.cat([dst, src])
        # the speaker touches every fact about the speaker: its spikes would reach them all
        keep = torch.tensor([int(c) not in me for c in cols.tolist()], dtype=torch.bool)
        adj = torch.sparse_coo_tensor(
            torch.stack([rows[keep], cols[keep]]),
            torch.ones(int(keep.sum().item())),
            (n, n),
            check_invariants=True,
        ).coalesce()
        current = torch.zeros(n)
        current[seeds] = self.seed_current
        start = time.perf_counter()
        spread = spread_activation(adj, current, self.steps, gain=self.gain)
        self.spread_ms.append((time.perf_counter() - start) * 1000)
        self.counts.append(spread.counts)
        first = spread.first_spike_ms.tolist()
        spikes = spread.spike_counts.tolist()
        scored: list[tuple[float, float, float, uuid.UUID]] = []
        for fact_id, s, d, is_current, agent_name, seen in edges:
            if not (history or is_current) or (agent is not None and agent_name != agent):
                continue
            ends = [index[int(x)] for x in (s, d) if index[int(x)] not in me]
            t = min(first[k] for k in ends)
            if t != float("inf"):
                newest = -float(seen) if self.recency else 0.0
                scored.append((t, -max(spikes[k] for k in ends), newest, fact_id))
        scored.sort(key=lambda x: (x[0], x[1], x[2]))
        return [(fact_id, int(t)) for t, _, _, fact_id in scored[:limit]]


def no_graph(conn: Any, user: str, text: str, **_: Any) -> Ranking:
    return []


@contextmanager
def graph_step(fn: GraphFn) -> Iterator[None]:
    """``facts.query`` with ``fn`` as its graph ranking for the duration."""
    served = graph.neighbourhood
    graph.neighbourhood = fn
    try:
        yield
    finally:
        graph.neighbourhood = served


def said(q: Question, texts: list[str]) -> int | None:
    """Rank (from 1) of the first episode that states ``q``'s answer (kin and value)."""
    for rank, text in enumerate(texts, start=1):
        words = set(re.findall(r"[\w']+", text.casefold()))
        if q.subject in words and set(q.value.split()) <= words:
            return rank
    return None


def right(found: list[tuple[str, str, str]], q: Question) -> int | None:
    """Rank (from 1) of the right fact in ``found``, or None."""
    want = (q.subject, q.relation, q.value)
    for rank, key in enumerate(found, start=1):
        if tuple(term.casefold() for term in key) == want:
            return rank
    return None


@dataclass
class Score:
    at1: int = 0
    at5: int = 0
    ms: list[float] = field(default_factory=list)

    def add(self, rank: int | None) -> None:
        self.at1 += rank == 1
        self.at5 += rank is not None and rank <= 5


def build(memory: Memory) -> tuple[list[Question], list[float]]:
    """Store and consolidate every statement; the questions and the pass times (ms)."""
    slots = json.loads(DIALOGUE.read_text())["slots"]
    consolidator = Consolidator(memory)
    statements: list[tuple[str, str]] = []
    questions: list[Question] = []
    later: list[tuple[str, str]] = []
    for u, user in enumerate(NAMES):
        for i, slot in enumerate(slots):
            value = slot["values"][(i + u) % len(slot["values"])]
            statements.append((user, slot["first"].format(v=value)))
        first, moves, asked = people(user, u)
        statements += [(user, s) for s in first]
        later += [(user, s) for s in moves]
        questions += asked
    passes: list[float] = []
    for hour, (user, text) in enumerate(statements + later, start=1):
        ep = EpisodeIn(text=text, user=user, timestamp=T0 + timedelta(hours=hour))
        memory.store_episodes(StoreRequest(episodes=[ep]))
        start = time.perf_counter()
        consolidator.run()
        passes.append((time.perf_counter() - start) * 1000)
    return questions, passes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", default="4,8", help="LIF time steps (1 ms each), comma-separated"
    )
    parser.add_argument("--gain", type=float, default=1.0, help="current per incoming spike")
    parser.add_argument("--seed-current", type=float, default=1.5, help="current into seeds")
    args = parser.parse_args()
    try:
        step_list = [int(x) for x in args.steps.split(",")]
    except ValueError:
        parser.error(f"--steps must be comma-separated integers, got {args.steps!r}")
    if min(step_list) < 1 or args.gain <= 0 or args.seed_current <= 0:
        parser.error("--steps must be ≥ 1 and --gain, --seed-current > 0")
    print(load_line("start"))
    pg = embedded_postgres("memory_spreading")
    dsn = fresh_db(pg.dsn, "memory_spreading")
    cfg = MemoryConfig(state=OUT / "memory_spreading_state", search_index="postgres", hnsw_m=8)
    embedder = Embedder()
    memory = Memory(cfg, PgStore(dsn, cfg), embedder)
    questions, passes = build(memory)
    with memory.store.connection() as conn:
        n_entities = conn.execute("SELECT count(*) FROM entities").fetchone()
        n_edges = conn.execute("SELECT count(*) FROM edges").fetchone()
    print(
        f"graph: {n_entities[0] if n_entities else 0} entities, "
        f"{n_edges[0] if n_edges else 0} edges (two users); {len(questions)} questions; "
        f"consolidation pass per statement: {pcts(passes, 1)}"
    )
    spiking = {
        f"spiking T={t}{' +recency' if recency else ''}": SpikingGraph(
            t, args.gain, args.seed_current, recency=recency
        )
        for t in step_list
        for recency in (False, True)
    }
    steps: dict[str, GraphFn] = {
        "walk": graph.neighbourhood,
        "walk depth 1": partial(graph.neighbourhood, depth=1),
        **spiking,
        "none": no_graph,
    }
    alone = {name: Score() for name in steps}
    fused = {name: Score() for name in steps}
    episodes = {name: Score() for name in steps}
    by_kind = {
        (label, name, kind): Score()
        for label in ("alone", "fused")
        for name in steps
        for kind in ("name", "kin")
    }
    vectors = embedder.embed([q.text for q in questions])
    with memory.store.connection() as conn:
        for q, vec in zip(questions, vectors, strict=True):
            req = FactsRequest(text=q.text, user=q.user, k=5)
            for name, fn in steps.items():
                start = time.perf_counter()
                ranking = fn(conn, q.user, q.text, limit=20)
                alone[name].ms.append((time.perf_counter() - start) * 1000)
                got = facts.get(conn, [f for f, _ in ranking])
                keys = [
                    (got[f].subject, got[f].relation, got[f].value) for f, _ in ranking if f in got
                ]
                alone[name].add(right(keys, q))
                by_kind[("alone", name, q.kind)].add(right(keys, q))
                start = time.perf_counter()
                with graph_step(fn):
                    found = facts.query(conn, req, np.asarray(vec, dtype=np.float32))
                fused[name].ms.append((time.perf_counter() - start) * 1000)
                rank = right([(f.subject, f.relation, f.value) for f in found], q)
                fused[name].add(rank)
                by_kind[("fused", name, q.kind)].add(rank)
                recall = RecallRequest(text=q.text, vector=vec, user=q.user, search="hybrid")
                start = time.perf_counter()
                with graph_step(fn):
                    hits = memory.recall(recall).hits
                episodes[name].ms.append((time.perf_counter() - start) * 1000)
                episodes[name].add(said(q, [h.episode.text for h in hits]))
    memory.close()
    n = len(questions)
    rows = []
    for label, scores in (
        ("graph step alone", alone),
        ("facts.query (fused)", fused),
        ("episode recall (hybrid)", episodes),
    ):
        for name, s in scores.items():
            rows.append([label, name, n, f"{s.at1 / n:.3f}", f"{s.at5 / n:.3f}", pcts(s.ms, 2)])
    print(table(["ranking", "graph step", "questions", "recall@1", "recall@5", "latency"], rows))
    kinds = {"name": "by name (2 hops)", "kin": "by kin (1 hop)"}
    count = {kind: sum(q.kind == kind for q in questions) for kind in kinds}
    rows = [
        [
            label,
            name,
            kinds[kind],
            count[kind],
            f"{s.at1 / count[kind]:.3f}",
            f"{s.at5 / count[kind]:.3f}",
        ]
        for (label, name, kind), s in by_kind.items()
    ]
    print(table(["ranking", "graph step", "question", "n", "recall@1", "recall@5"], rows))
    for label, scores in (("alone", alone), ("fused", fused), ("episodes", episodes)):
        walk = scores["walk"]
        for name in [*spiking, "walk depth 1"]:
            spk = scores[name]
            r1 = f"{spk.at1 / walk.at1:.2f}" if walk.at1 else "walk 0"
            r5 = f"{spk.at5 / walk.at5:.2f}" if walk.at5 else "walk 0"
            lat = float(np.median(spk.ms)) / max(1e-9, float(np.median(walk.ms)))
            print(
                f"ratio {name}/walk ({label}): recall@1 {r1}, recall@5 {r5}, p50 latency {lat:.2f}"
            )
    for name, sg in spiking.items():
        if name.endswith("+recency"):
            continue
        total = sum(sg.counts, OpCounts())
        runs = max(1, total.samples)
        print(
            f"{name} per run (gain {args.gain}, seed current {args.seed_current}; "
            f"{total.samples} runs): {total.spikes / runs:.1f} spikes, "
            f"{total.sop / runs:.1f} synaptic ops, {total.state_updates / runs:.0f} state "
            f"updates, modelled {total.energy_pj('fp32') / runs:.1f} pJ (fp32 AC, 45 nm; "
            "modelled, not measured); spread_activation itself "
            f"{pcts(sg.spread_ms, 2)}"
        )
    print("the walk is a Postgres query on the CPU: no operation-count energy model")
    print(load_line("end"))


if __name__ == "__main__":
    main()
