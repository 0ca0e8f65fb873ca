"""The whole stack under concurrent clients: throughput, latency, lost episodes, memory.

Starts the services as deployed, each in its own process (``emily serve memory`` over
an embedded Postgres + pgvector, ``inference`` with llama.cpp and Gemma 3 270M on the
CPU, ``cognition``; peers on loopback Zenoh), then drives them from this process:

1. the **baseline**: one client, each path alone, ``--baseline`` requests per path;
2. the **load**: ``--clients`` concurrent clients (threads sharing one Zenoh session,
   closed loop, no think time) for ``--duration`` seconds, each request drawn at random
   from four paths: a reflex utterance (``cognition/observe`` without the LLM), a
   recall by text (``memory/recall``), a store of one new episode (``memory/store``,
   embedded by the service), and a deliberation (``cognition/observe`` with the LLM).

It prints requests/s and p50/p99 per path with the ratio to the baseline's p50,
errors (error replies and timeouts), degraded answers (a cycle that named a missing
service, a store kept in memory's outbox rather than Postgres, a recall without hits)
and who answered (the cycle's tier, the tier of a recall's best hit). After the load
it waits until cognition's episode outbox is empty (its ``emily_cognition_pending_episodes``
gauge; how long that and memory's own outbox took to drain is printed, with what was
still pending if it had not drained within ``--drain-limit`` seconds, and the episodes
cognition dropped or memory refused) and memory has stored every episode, then counts
in Postgres, by id, the
episodes the clients stored and the cycles' own episodes: **lost** (an acknowledged id
Postgres lacks, unless consolidation merged it into an earlier episode that it still
holds, as it does with repeated statements) and **duplicated** (one client request
stored under more than one id).
Every second it samples the resident memory of each service (RSS; Postgres as the PSS
sum of its processes, so that shared buffers count once) and prints each one's growth
per stored episode next to the in-process HNSW index's own bytes per episode. Memory's
resident set also holds the heap freed since its last trim (every 30 s), so it swings
with the load; what it keeps is its resident set right after each trim
(``emily_memory_resident_after_trim_bytes``), whose growth per episode is set against
the index alone grown to the same counts in a process of its own
(``bench/index_rss.py``). Under load a trim also finds the working memory of the
requests in flight; with ``--quiet-every S`` the load pauses every ``S`` seconds of it
(and once after it) until cognition's outbox is empty, memory's consolidation has no
statement left (the checkpoint runs its passes until one finds none, so that no pass
holds a batch of statements when memory is measured) and memory has held still, and
the kept size of memory's next trim is read then (:mod:`system_load_memory`). The
pauses do not count in the load's duration or rates. ``--memory-env`` adds settings to
the memory service's environment (smaller tier capacities, say, so that the caches are
full early and what grows after is the index and what else grows).

    .venv/bin/python bench/system_load.py [--clients 50] [--duration 300] [--json F] [--plot]
        [--drain-limit 600] [--quiet-every 0] [--memory-env K=V,...] [--report F]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import zenoh
from cognition_common import raw_call
from common import env_pairs, load_line, percentile
from heap_dumps import Dump, dump
from system_load_memory import (
    KeptRow,
    Sampler,
    growth,
    index_bytes_per_episode,
    kept_growth,
    memory_kept,
    quiet_kept,
)
from system_load_report import plot, report
from system_load_stack import (
    cognition_outbox,
    consolidated,
    drain,
    running,
    settle,
    stack,
    stored_rows,
    until_cognition_sees_memory,
)

from emily.bus import Keys
from emily.bus.endpoints import CONSOLIDATE, OBSERVE, RECALL, STATS, STORE
from emily.bus.messages import decode, encode
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from emily.bus.schemas.memory import (
    EpisodeIn,
    RecallReply,
    RecallRequest,
    StatsReply,
    StatsRequest,
    StoreReply,
    StoreRequest,
)
from emily.cognition.reflex import Reflex
from emily.cognition.reflex import data as rdata
from emily.ids import uuid7
from emily.memory.config import MemoryConfig
from emily.memory.heapdump import DIAG_ENV, DUMP_FILE

PATHS = ("reflex", "recall", "store", "deliberate")
WEIGHTS = (0.45, 0.25, 0.25, 0.05)
QUESTIONS = [
    "where did I leave the spare key",
    "what did Ana say about the trip",
    "when is the dentist appointment",
    "which train goes to the coast",
    "what is the cabin wifi password",
]
DELIBERATE = ["Why is the sky blue?", "Name one benefit of walking.", "Why do cats purr?"]
_VOCAB = (
    "harbour lantern cello orchard garage ticket violet granite meadow kettle ferry compass "
    "pepper saddle quarry tulip anchor biscuit canyon dahlia ember falcon glacier hammock "
    "iris juniper kayak lemon marble nutmeg otter pebble quartz"
)
WORDS = _VOCAB.split()
_NUMBERS = re.compile(r"[0-9a-f]{8}-[0-9a-f-]{27}|\d+(\.\d+)?")
TIMEOUT_S = {"reflex": 60.0, "recall": 60.0, "store": 60.0, "deliberate": 180.0}


@dataclass
class Outcome:
    """What the clients saw: per path (start s, latency ms) of answered requests,
    errors and degraded answers, and the ids each request was acknowledged under."""

    lat: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: {p: [] for p in PATHS}
    )
    errors: Counter[str] = field(default_factory=Counter)
    first_error: dict[str, str] = field(default_factory=dict)
    degraded: Counter[str] = field(default_factory=Counter)
    tiers: dict[str, Counter[str]] = field(default_factory=lambda: {p: Counter() for p in PATHS})
    #: per path, why cognition answered as it did when it did not deliberate or answer by
    #: reflex: (tier, what was missing, the trace's notes with ids and numbers cut)
    why: dict[str, Counter[str]] = field(default_factory=lambda: {p: Counter() for p in PATHS})
    acked: dict[str, uuid.UUID] = field(default_factory=dict)  # request tag -> episode id
    lock: threading.Lock = field(default_factory=threading.Lock)


class Driver:
    """Builds, sends and checks one request of a path; every stored episode carries
    ``context = {"load": run, "seq": tag}``, ``tag`` unique per request."""

    def __init__(self, client: zenoh.Session, keys: Keys, fired: list[str], run: str) -> None:
        self.client, self.run, self.fired = client, run, fired
        self.key = {
            "reflex": OBSERVE.key(keys),
            "deliberate": OBSERVE.key(keys),
            "recall": RECALL.key(keys),
            "store": STORE.key(keys),
        }

    def once(self, path: str, tag: str, rng: random.Random, out: Outcome, t0: float) -> None:
        """One request; its latency, error or degradation and stored id go to ``out``."""
        ctx: dict[str, str | int | float | bool | None] = {"load": self.run, "seq": tag}
        if path == "store":
            text = " ".join(rng.choice(WORDS) for _ in range(8)) + f" ({tag})"
            req: Any = StoreRequest(episodes=[EpisodeIn(id=uuid7(), text=text, context=ctx)])
        elif path == "recall":
            req = RecallRequest(text=rng.choice(QUESTIONS), k=5)
        else:
            llm = path == "deliberate"
            text = rng.choice(DELIBERATE if llm else self.fired)
            req = ObserveRequest(text=text, allow_llm=llm, max_tokens=8, context=ctx)
        start = time.perf_counter()
        try:
            raw = raw_call(self.client, self.key[path], encode(req), timeout_s=TIMEOUT_S[path])
        except Exception as exc:  # an error reply or no reply within the deadline
            with out.lock:
                out.errors[path] += 1
                out.first_error.setdefault(path, str(exc)[:300])
            return
        ms = (time.perf_counter() - start) * 1e3
        acked, degraded, tier, why = self._check(path, raw)
        with out.lock:
            out.lat[path].append((start - t0, ms))
            out.degraded[path] += degraded
            out.tiers[path][tier] += 1
            if why:
                out.why[path][why] += 1
            if acked is not None:
                out.acked[tag] = acked

    @staticmethod
    def _check(path: str, raw: bytes) -> tuple[uuid.UUID | None, bool, str, str]:
        """(the id stored, degraded, who answered, why: see :attr:`Outcome.why`) of one
        reply."""
        if path == "store":
            store = decode(StoreReply, raw)
            return store.ids[0], not store.durable, "memory", ""
        if path == "recall":
            hits = decode(RecallReply, raw).hits
            return None, not hits, hits[0].tier if hits else "none", ""
        trace = decode(ObserveReply, raw).trace
        stored = trace.cycle_id if trace.episode != "skipped" else None
        why = ""
        if path == "deliberate" and trace.tier != "deliberation":
            notes = "; ".join(_NUMBERS.sub("#", n) for n in trace.notes)
            why = f"{trace.tier} (policy {trace.policy}; missing {trace.missing}): {notes}"
        return stored, bool(trace.missing), trace.tier, why


def drive(
    driver: Driver, clients: int, duration_s: float, seed: int, out: Outcome, part: int = 0
) -> float:
    """``clients`` closed-loop threads for ``duration_s``; returns the wall time (s).
    ``part`` numbers the stretches of one load, so that every request's tag stays unique
    across them."""
    t0 = time.perf_counter()
    stop = t0 + duration_s

    def client(c: int) -> None:
        rng = random.Random(f"{seed}-{part}-{c}")
        i = 0
        while time.perf_counter() < stop:
            path = rng.choices(PATHS, WEIGHTS)[0]
            driver.once(path, f"{path}-{seed}.{part}-{c}-{i}", rng, out, t0)
            i += 1

    threads = [threading.Thread(target=client, args=(c,), name=f"load-{c}") for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def baseline(driver: Driver, n: int, out: Outcome) -> None:
    """One client, ``n`` requests of each path in turn (deliberations: ``n // 10``)."""
    rng, t0 = random.Random(7), time.perf_counter()
    for path in PATHS:
        for i in range(max(1, n // 10) if path == "deliberate" else n):
            driver.once(path, f"base-{path}-{i}", rng, out, t0)


def stretches(duration_s: float, quiet_every_s: float) -> list[float]:
    """The load's stretches (s) between quiet checkpoints: ``duration_s`` cut every
    ``quiet_every_s`` (0: one stretch), the last one what is left."""
    if quiet_every_s <= 0 or quiet_every_s >= duration_s:
        return [duration_s]
    whole = int(duration_s // quiet_every_s)
    rest = duration_s - whole * quiet_every_s
    return [quiet_every_s] * whole + ([rest] if rest > 1e-9 else [])


def run(
    clients: int,
    duration_s: float,
    n_base: int = 30,
    seed: int = 1,
    root: Path | None = None,
    drain_limit_s: float = 600.0,
    quiet_every_s: float = 0.0,
    memory_env: dict[str, str] | None = None,
    heap_dumps: bool = False,
) -> dict[str, Any]:
    """Start the stack under ``root`` (a fresh temporary dir, removed afterwards, when
    ``None``), measure the baseline and the load; returns every figure (see the module
    docstring) as plain JSON-able values. ``quiet_every_s`` > 0 pauses the load that
    often for a quiet checkpoint (:func:`system_load_memory.quiet_kept`), and once more
    after it; ``memory_env`` is added to the memory service's environment. ``heap_dumps``
    (with ``quiet_every_s``): memory runs with ``EMILY_MEMORY_DIAG=1`` and writes a heap
    dump (:mod:`emily.memory.heapdump`) at each quiet checkpoint."""
    if root is None:
        with tempfile.TemporaryDirectory(prefix="system-load-") as tmp:
            return run(
                clients,
                duration_s,
                n_base,
                seed,
                Path(tmp),
                drain_limit_s,
                quiet_every_s,
                memory_env,
                heap_dumps,
            )
    run_id = f"load-{uuid.uuid4().hex[:8]}"
    per_index = index_bytes_per_episode(MemoryConfig())
    if heap_dumps:
        memory_env = {**(memory_env or {}), DIAG_ENV: "1"}
    dumps: list[Dump] = []
    consolidations: list[int] = []  # statements consolidated at each quiet checkpoint
    with stack(root, memory_env) as (client, keys, pids, dsn, cog_metrics, mem_metrics):
        until_cognition_sees_memory(client, keys)
        reflex = Reflex.load_or_build(root / "state" / "cognition", embeddings=False)
        fired = [
            r.text
            for r in rdata.load_intents()
            if r.intent != rdata.OOS and reflex.fast.decide(r.text).fired
        ]
        driver = Driver(client, keys, fired, run_id)
        base = Outcome()
        baseline(driver, n_base, base)
        stats_key = STATS.key(keys)
        settle(client, stats_key)

        def episodes() -> int:
            raw = raw_call(client, stats_key, encode(StatsRequest()), timeout_s=10)
            return decode(StatsReply, raw).episodes

        def quiet(at: float) -> KeptRow:
            """A quiet checkpoint: cognition's outbox drained, every statement
            consolidated, memory's outbox empty and its count still."""

            def settle_now() -> int:
                drain(cog_metrics, drain_limit_s)
                consolidations.append(consolidated(client, CONSOLIDATE.key(keys)))
                return settle(client, stats_key)

            n, kept, shapes, slots = quiet_kept(settle_now, lambda: memory_kept(mem_metrics))
            if heap_dumps:  # after the kept size is read: the dump trims too
                path = root / "state" / "memory" / DUMP_FILE
                dumps.append({"episodes": n, **dump(pids["memory"], path, len(dumps) + 1)})
            return at, n, kept, shapes, slots

        out, wall = Outcome(), 0.0
        quiet_rows: list[KeptRow] = []
        parts = stretches(duration_s, quiet_every_s)
        with Sampler(pids, episodes, lambda: memory_kept(mem_metrics)) as sampler:
            for part, length in enumerate(parts):
                wall += drive(driver, clients, length, seed, out, part)
                if quiet_every_s > 0 and part < len(parts) - 1:
                    quiet_rows.append(quiet(time.perf_counter() - sampler.t0))
            load_end = time.perf_counter() - sampler.t0
            ended = time.monotonic()
            pending_at_end = cognition_outbox(cog_metrics)[0]
            drain_s, still_pending = drain(cog_metrics, drain_limit_s)
            settle(client, stats_key)
            settled_s = time.monotonic() - ended
            sampler.sample()
            if quiet_every_s > 0:
                quiet_rows.append(quiet(time.perf_counter() - sampler.t0))
        outcomes = cognition_outbox(cog_metrics)[1]
        exited = sorted(name for name, pid in pids.items() if not running(pid))
        rows, merged = stored_rows(dsn, run_id)
        index = decode(StatsReply, raw_call(client, stats_key, encode(StatsRequest()))).index
    acked = {**base.acked, **out.acked}
    in_pg = Counter(i for i, _ in rows)
    per_seq = Counter(s for _, s in rows)
    lost = [str(i) for i in acked.values() if i not in in_pg and not merged.get(i, False)]
    lost_set = set(lost)
    dup = sorted(s for s, c in per_seq.items() if c > 1)
    load_rows = [r for r in sampler.rows if r[0] <= load_end + 1e-9] or sampler.rows
    mem = {
        name: {
            "start_mib": sampler.rows[0][2][name] / 1024,
            "end_mib": sampler.rows[-1][2][name] / 1024,
            "bytes_per_episode": growth(load_rows, name)[0],
            "bytes_per_episode_2nd_half": growth(load_rows, name)[1],
        }
        for name in pids
    }
    kept_rows = [r for r in sampler.kept_rows if r[0] <= load_end + 1e-9]
    for prefix, series in (("", kept_rows), ("quiet_", quiet_rows)):
        if series:
            g = kept_growth(series)
            mem["memory"].update(
                {
                    f"{prefix}kept_bytes_per_episode": g.whole,
                    f"{prefix}kept_bytes_per_episode_2nd_half": g.half,
                    f"{prefix}index_alone_whole": g.alone_whole,
                    f"{prefix}index_alone": g.alone,
                    f"{prefix}excess": g.excess,
                    f"{prefix}excess_2nd_half": g.excess_half,
                    f"{prefix}index_alone_bytes": g.alone_bytes,
                }
            )
    return {
        "clients": clients,
        "duration_s": wall,
        "quiet_every_s": quiet_every_s,
        "load_average": os.getloadavg()[0],
        "paths": {
            p: {
                "n": len(out.lat[p]),
                "per_s": len(out.lat[p]) / wall,
                "p50_ms": _pct(out.lat[p], 50),
                "p99_ms": _pct(out.lat[p], 99),
                "base_p50_ms": _pct(base.lat[p], 50),
                "base_p99_ms": _pct(base.lat[p], 99),
                "errors": out.errors[p] + base.errors[p],
                "degraded": out.degraded[p] + base.degraded[p],
                "first_error": out.first_error.get(p) or base.first_error.get(p),
                "answered_by": dict(out.tiers[p]),
                "why": dict(out.why[p].most_common(8)),
            }
            for p in PATHS
        },
        "requests": sum(len(v) for v in out.lat.values()),
        "errors": sum(out.errors.values()) + sum(base.errors.values()),
        "exited": exited,
        "acked_episodes": len(acked),
        "episodes_in_postgres": len(rows),
        "merged": sum(1 for i in acked.values() if i not in in_pg and merged.get(i, False)),
        "lost": len(lost),
        "lost_ids": lost[:20],
        "lost_by_path": dict(
            Counter(t.split("-")[0] for t, i in acked.items() if str(i) in lost_set)
        ),
        "duplicated": len(dup),
        "duplicated_seqs": dup[:20],
        "cognition_pending_at_end_of_load": pending_at_end,
        "cognition_drain_s": drain_s,
        "cognition_pending_at_count": still_pending,
        "drained_and_settled_s": settled_s,
        "cognition_episodes": outcomes,
        "unacked_in_postgres": len(set(in_pg) - set(acked.values())),
        "indexed": index.indexed,
        "index_bytes_per_episode": per_index,
        "memory": mem,
        "memory_env": dict(memory_env or {}),
        "load_end_s": load_end,
        "samples": [(t, n, kib) for t, n, kib in sampler.rows],
        "kept_after_trims": kept_rows,
        "kept_when_quiet": quiet_rows,
        "heap_dumps": dumps,
        "consolidated_when_quiet": consolidations,
    }


def _pct(lat: list[tuple[float, float]], q: float) -> float:
    return percentile([ms for _, ms in lat], q) if lat else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    ap.add_argument("--baseline", type=int, default=30, help="1-client requests per path")
    ap.add_argument("--json", type=Path, help="also write every figure to this file")
    ap.add_argument("--plot", action="store_true")
    ap.add_argument(
        "--drain-limit",
        type=float,
        default=600.0,
        help="most seconds to wait for cognition's episode outbox to empty after the load",
    )
    ap.add_argument(
        "--quiet-every",
        type=float,
        default=0.0,
        help="pause the load every so many seconds of it, and after it, until the stack is "
        "quiet, and read what memory keeps after its next heap trim (0: never)",
    )
    ap.add_argument(
        "--memory-env",
        type=env_pairs,
        default={},
        help="KEY=VALUE[,KEY=VALUE] added to the memory service's environment",
    )
    ap.add_argument(
        "--heap-dumps",
        action="store_true",
        help="with --quiet-every: memory writes a heap dump at each quiet checkpoint, and "
        "the report adds the growth of each part of its memory",
    )
    ap.add_argument("--report", type=Path, help="only print the report of a --json file")
    args = ap.parse_args()
    if args.report:
        report(json.loads(args.report.read_text()))
        return
    if (
        args.clients < 1
        or args.duration <= 0
        or args.baseline < 1
        or args.drain_limit < 0
        or args.quiet_every < 0
    ):
        raise SystemExit(
            "--clients and --baseline must be at least 1, --duration above 0,"
            " --drain-limit and --quiet-every at least 0"
        )
    if args.heap_dumps and not args.quiet_every:
        raise SystemExit("--heap-dumps are written at quiet checkpoints: give --quiet-every")
    print(load_line("at start"), flush=True)
    r = run(
        args.clients,
        args.duration,
        args.baseline,
        drain_limit_s=args.drain_limit,
        quiet_every_s=args.quiet_every,
        memory_env=args.memory_env,
        heap_dumps=args.heap_dumps,
    )
    report(r)
    print(load_line("at end"))
    if args.json:
        args.json.write_text(json.dumps(r, indent=1))
    if args.plot:
        plot(r)


if __name__ == "__main__":
    main()
