"""What the memory service's resident memory grows by under a steady load, and of what.

For each variant in ``--variants`` (``default`` is the same-run baseline; another is a
list of ``KEY=VALUE`` environment settings of the service joined by ``,``, such as
``EMILY_MEMORY__MALLOC_ARENA_MAX=0`` for glibc's own arena count, since the service
bounds it to 2 by default, or ``PYTHONPATH=DIR`` to serve another checkout's package),
in a fresh database of the embedded Postgres (pgserver + pgvector, data in
``bench/out/pg-rss``) and a fresh state dir:

1. ``emily serve memory`` is started in its own process with ``EMILY_MEMORY_DIAG=1``
   (and ``EMILY_MEMORY_TRACEMALLOC`` with ``--tracemalloc N``), consolidation every
   ``--consolidate-s`` (30 s, the default of the service), and waited for until its
   in-process index is ready;
2. ``--clients`` threads over loopback Zenoh send, until ``--episodes`` are stored,
   stores of 1 to ``--max-batch`` texts of 3 to 60 words (embedded by the service with
   MiniLM: the real path, with inputs of many lengths) and, for ``--recall-share`` of
   the requests, recalls by a text of 3 to 12 words (k=5);
3. every ``--every`` stored episodes it sends the service ``SIGUSR2`` and reads the dump
   (:mod:`emily.memory.heapdump`): ``VmRSS``, ``RssAnon``/``RssFile``, glibc's bytes in
   use and free-but-kept, its arenas, the index and tier sizes and, when traced, the
   Python heap by file, then the same kernel figures after ``malloc_trim(0)``: what the
   service keeps, without the freed heap that its own trim every 30 s gives back.

Before the variants, ``bench/index_rss.py`` grows the index alone in a process of its
own to the same counts, as hnswlib's bare graph and as memory's ``AnnIndex`` (the graph
with its id map and scope table): the same-run baseline, the index's own resident bytes
per element. It prints each variant's checkpoints, the growth of each component per
stored episode (least-squares slope over the second half of the checkpoints, as
``bench/system_load.py`` computes it) with its ratio to the index alone, the traced
Python files that grew most, and a comparison of the variants with their ratio to the
first.

    .venv/bin/python bench/memory_rss.py [--episodes 20000] [--every 2000] [--clients 8]
        [--variants "EMILY_MEMORY__MALLOC_ARENA_MAX=0;default"] [--tracemalloc 1] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import zenoh
from cognition_common import bus_env, process, raw_call, serve_cmd
from common import OUT, env_pairs, free_port, load, load_line, percentile, table
from heap_dumps import KEPT, checkpoint_table, component, component_rows, dump
from heap_dumps import growth as heap_growth
from index_rss import measure as index_alone
from index_rss import per_element
from memory_common import embedded_postgres, fresh_db

from emily.bus import BusConfig, Keys, open_session
from emily.bus.endpoints import RECALL, STATS, STORE
from emily.bus.messages import decode, encode
from emily.bus.schemas.memory import (
    EpisodeIn,
    RecallReply,
    RecallRequest,
    StatsReply,
    StatsRequest,
    StoreReply,
    StoreRequest,
)
from emily.memory.config import MemoryConfig
from emily.memory.embedded import EmbeddedPostgres
from emily.memory.heapdump import DUMP_FILE

_VOCAB = (
    "harbour lantern cello orchard garage ticket violet granite meadow kettle ferry compass "
    "pepper saddle quarry tulip anchor biscuit canyon dahlia ember falcon glacier hammock "
    "iris juniper kayak lemon marble nutmeg otter pebble quartz river sister train coast "
    "dentist appointment spare key trip cabin password morning evening yesterday tomorrow "
    "remember bought called visited cooked painted lost found borrowed promised"
)
WORDS = _VOCAB.split()
#: The same-run baselines (bench/index_rss.py kinds), as printed.
ALONE = (("index", "memory's index alone (measured)"), ("hnswlib", "hnswlib alone (measured)"))


@dataclass
class Variant:
    """One configuration's figures: checkpoint dumps, trimmed RSS, rates."""

    name: str
    env: dict[str, str]
    dumps: list[dict[str, Any]] = field(default_factory=list)
    episodes: list[int] = field(default_factory=list)
    trimmed: dict[str, Any] | None = None
    store_s: float = 0.0
    stored: int = 0
    recall_ms: list[float] = field(default_factory=list)
    errors: int = 0
    load_end: str = ""


def parse_variants(spec: str) -> list[Variant]:
    """``default;K=V,K2=V2`` -> variants (``default`` is the service's own environment)."""
    out = []
    for part in (p.strip() for p in spec.split(";")):
        if not part:
            continue
        out.append(Variant(part, {} if part == "default" else env_pairs(part)))
    if not out:
        raise SystemExit("--variants names no variant")
    return out


def text(rng: random.Random, lo: int, hi: int) -> str:
    """``lo`` to ``hi`` random words."""
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


class Load:
    """Closed-loop client threads storing and recalling until ``target`` episodes."""

    def __init__(self, session: zenoh.Session, keys: Keys, args: argparse.Namespace) -> None:
        self.session, self.args = session, args
        self.store_key, self.recall_key = STORE.key(keys), RECALL.key(keys)
        self.stored = 0
        self.target = 0
        self.lock = threading.Lock()
        self.recall_ms: list[float] = []
        self.errors = 0

    def client(self, c: int, seed: int) -> None:
        rng = random.Random(seed * 1000 + c)
        while True:
            with self.lock:
                if self.stored >= self.target:
                    return
            try:
                if rng.random() < self.args.recall_share:
                    req = RecallRequest(text=text(rng, 3, 12), k=5)
                    t = time.perf_counter()
                    decode(RecallReply, raw_call(self.session, self.recall_key, encode(req), 60))
                    with self.lock:
                        self.recall_ms.append((time.perf_counter() - t) * 1e3)
                else:
                    n = rng.randint(1, self.args.max_batch)
                    eps = [EpisodeIn(text=text(rng, 3, 60)) for _ in range(n)]
                    raw = raw_call(self.session, self.store_key, encode(StoreRequest(episodes=eps)))
                    got = len(decode(StoreReply, raw).ids)
                    with self.lock:
                        self.stored += got
            except Exception:  # an error reply or a timeout: counted, the load goes on
                with self.lock:
                    self.errors += 1

    def run_to(self, target: int, seed: int) -> None:
        """Drive until ``target`` episodes are stored in all."""
        self.target = target
        threads = [
            threading.Thread(target=self.client, args=(c, seed), daemon=True)
            for c in range(self.args.clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def measure(v: Variant, dsn: str, args: argparse.Namespace, state: Path) -> None:
    """Serve, load and dump one variant (see the module docstring), state under ``state``."""
    shutil.rmtree(state, ignore_errors=True)
    endpoint, node = f"tcp/127.0.0.1:{free_port()}", "rss"
    extra = {
        "EMILY_MEMORY__DSN": dsn,
        "EMILY_MEMORY__METRICS_PORT": "0",
        "EMILY_MEMORY__HTTP_PORT": "0",
        "EMILY_MEMORY__CONSOLIDATE_INTERVAL_S": str(args.consolidate_s),
        "EMILY_MEMORY_DIAG": "1",
        **({"EMILY_MEMORY_TRACEMALLOC": str(args.tracemalloc)} if args.tracemalloc else {}),
        **v.env,
    }
    env = bus_env(endpoint, node, state, **extra)
    session = open_session(BusConfig(node=node, listen=(), connect=(endpoint,)))
    keys = Keys(node)
    heap = state / "memory" / DUMP_FILE
    try:
        with process(serve_cmd("memory"), env, session, RECALL.key(keys), wait_s=600) as proc:
            while not decode(
                StatsReply, raw_call(session, STATS.key(keys), encode(StatsRequest()))
            ).index.index_ready:
                time.sleep(0.2)
            load_gen = Load(session, keys, args)
            load_gen.run_to(args.warmup, seed=0)  # model buffers, pools, first index pages
            t0 = time.perf_counter()
            for target in range(args.warmup, args.warmup + args.episodes + 1, args.every):
                load_gen.run_to(target, seed=target)
                v.dumps.append(dump(proc.pid, heap, len(v.dumps) + 1))
                v.episodes.append(load_gen.stored)
                print(
                    f"  {v.name}: {load_gen.stored:,} episodes, "
                    f"RSS {v.dumps[-1]['proc']['VmRSS'] / 2**20:,.0f} MiB, "
                    f"{v.dumps[-1]['after_trim']['VmRSS'] / 2**20:,.0f} after a trim, "
                    f"load {load()}",
                    flush=True,
                )
            v.store_s = time.perf_counter() - t0
            v.trimmed = v.dumps[-1]
            v.stored = load_gen.stored - args.warmup
            v.recall_ms, v.errors = load_gen.recall_ms, load_gen.errors
            v.load_end = load()
    finally:
        session.close()  # type: ignore[no-untyped-call]


def growth(v: Variant, read: Any) -> tuple[float, float]:
    """Slope of a component over every checkpoint and over the second half."""
    return heap_growth(v.episodes, v.dumps, read)


def mib(b: float) -> str:
    return f"{b / 2**20:,.1f}"


def baselines(args: argparse.Namespace) -> dict[str, float]:
    """Resident bytes per element of the index alone, grown to the run's checkpoint
    counts in a process of its own (``bench/index_rss.py``), by kind."""
    counts = list(range(args.warmup, args.warmup + args.episodes + 1, args.every))
    counts = [c for c in counts if c > 0]
    cfg, out = MemoryConfig(), {}
    for kind, label in ALONE:
        out[kind] = per_element(index_alone(kind, counts, cfg.hnsw_m, cfg.hnsw_ef_construction))
        print(f"  {label}: {out[kind]:,.0f} B per element, 2nd half", flush=True)
    return out


def report(v: Variant, alone: dict[str, float]) -> None:
    """Checkpoints, component growth against the index alone (``alone``, by kind) and
    the Python files that grew, of one variant."""
    print(f"\nvariant {v.name} {v.env or ''}")
    print(checkpoint_table(v.episodes, v.dumps))
    if v.trimmed is not None:
        before, after = v.trimmed["proc"]["VmRSS"], v.trimmed["after_trim"]["VmRSS"]
        print(f"malloc_trim(0) at the end: RSS {mib(before)} -> {mib(after)} MiB")
    own = alone["index"]
    crows = component_rows(v.episodes, v.dumps, own)
    for kind, label in ALONE:
        crows.append((label, "", f"{alone[kind]:,.0f}", f"{alone[kind] / own:.2f}x"))
    print(table(("component", "B/episode", "B/episode, 2nd half", "vs index alone"), crows))
    mid, last = v.dumps[len(v.dumps) // 2], v.dumps[-1]
    if "by_file" in last["python"]:
        span = v.episodes[-1] - v.episodes[len(v.dumps) // 2]
        before = {f["file"]: f["bytes"] for f in mid["python"]["by_file"]}
        grew = sorted(
            ((f["file"], f["bytes"] - before.get(f["file"], 0)) for f in last["python"]["by_file"]),
            key=lambda x: -x[1],
        )[:10]
        print(
            table(
                ("traced Python file", "B/episode, 2nd half"),
                [(short(f), f"{b / max(span, 1):,.0f}") for f, b in grew],
            )
        )


def short(path: str) -> str:
    """A traced file's path from its package or ``site-packages`` on."""
    for mark in ("/site-packages/", "/src/", "/lib/python"):
        if mark in path:
            return path.split(mark, 1)[1]
    return path


def compare(variants: list[Variant], alone: dict[str, float]) -> None:
    """One row per variant with its ratio to the first and to the index alone."""
    b_half = growth(variants[0], KEPT)[1]
    rows = []
    for v in variants:
        half = growth(v, KEPT)[1]
        rate = v.stored / v.store_s if v.store_s else float("nan")
        rows.append(
            (
                v.name,
                mib(v.dumps[0]["proc"]["VmRSS"]),
                mib(v.dumps[-1]["proc"]["VmRSS"]),
                f"{half:,.0f}",
                f"{half / b_half:.2f}x" if b_half else "-",
                f"{half / alone['index']:.2f}x",
                f"{growth(v, component('glibc malloc free, kept'))[1]:,.0f}",
                f"{rate:,.0f}",
                f"{percentile(v.recall_ms, 50):.1f}" if v.recall_ms else "-",
                v.errors,
                v.load_end,
            )
        )
    head = (
        "variant",
        "RSS first MiB",
        "RSS last MiB",
        "kept B/episode, 2nd half",
        "vs first",
        "vs index alone",
        "malloc free B/episode",
        "episodes/s",
        "recall p50 ms",
        "errors",
        "load 1m",
    )
    print("\n" + table(head, rows))


def embed_rates(calls: int, rounds: int = 3) -> None:
    """In this process: texts/s of the embedder with and without shape buckets, on
    batches of 1 to 8 texts of 3 to 60 words (a warm-up list, then ``calls`` batches
    of a fresh draw per round, the two settings taking turns), and glibc's bytes in
    use after both. The caches get their library default (1,024 entries) unless the
    environment sets them, so the unbucketed embedder is not starved of entries."""
    for var in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
        os.environ.setdefault(var, "1024")
    from emily.embed import Embedder
    from emily.memory.heapdump import mallinfo2

    def batches(seed: int, n: int) -> list[list[str]]:
        rng = random.Random(seed)
        return [[text(rng, 3, 60) for _ in range(rng.randint(1, 8))] for _ in range(n)]

    kinds = {k: Embedder(device="cpu", shape_buckets=k) for k in (False, True)}
    rates: dict[bool, list[float]] = {False: [], True: []}
    for e in kinds.values():
        for b in batches(0, calls):
            e.embed(b)
    for r in range(rounds):
        work = batches(r + 1, calls)
        for bucketed, e in kinds.items():
            t = time.perf_counter()
            for b in work:
                e.embed(b)
            rates[bucketed].append(sum(map(len, work)) / (time.perf_counter() - t))
    base = float(np.median(rates[False]))
    rows = [
        (name, f"{np.median(rates[k]):,.1f}", f"{np.median(rates[k]) / base:.2f}x", load())
        for name, k in (("exact shapes (before)", False), ("shape buckets", True))
    ]
    print(table(("embedder", "texts/s (median)", "vs exact", "load 1m"), rows))
    print(f"glibc in use after both: {mib(mallinfo2().get('in_use', 0))} MiB")


def run(args: argparse.Namespace, root: Path | None = None, done: Any = None) -> list[Variant]:
    """Measure every variant of ``args.variants``; Postgres and state under ``root``
    (``bench/out``, Postgres' data kept between runs, when ``None``); ``done(variant)``
    is called as each one is measured."""
    variants = parse_variants(args.variants)
    if root is None:
        pg, state = embedded_postgres("pg-rss"), OUT / "state-rss"
    else:
        pg, state = EmbeddedPostgres(root / "pg"), root / "state"
    try:
        for v in variants:
            measure(v, fresh_db(pg.dsn, "rss"), args, state)
            if done is not None:
                done(v)
    finally:
        if root is not None:
            pg.stop()
    return variants


def parser() -> argparse.ArgumentParser:
    """The command line (also what a test fills in)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=20_000, help="stored after the warm-up")
    ap.add_argument("--every", type=int, default=2_000, help="episodes between dumps")
    ap.add_argument("--warmup", type=int, default=1_000, help="episodes stored before")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--max-batch", type=int, default=8, help="most texts per store")
    ap.add_argument("--recall-share", type=float, default=0.3, help="share of requests")
    ap.add_argument("--variants", default="default", help="'default;KEY=VALUE,...;...'")
    ap.add_argument(
        "--consolidate-s", type=float, default=30.0, help="consolidation period (0: off)"
    )
    ap.add_argument("--tracemalloc", type=int, default=0, help="frames traced (0: off)")
    ap.add_argument("--json", type=Path, help="also write every dump to this file")
    ap.add_argument(
        "--embed-rate", type=int, default=0, help="only compare embed rates over N batches"
    )
    return ap


def main() -> None:
    args = parser().parse_args()
    if args.every < 1 or args.episodes < 3 * args.every or args.warmup < 0:
        raise SystemExit("--every must be >= 1, --episodes at least 3 x --every, --warmup >= 0")
    if args.clients < 1 or args.max_batch < 1 or not 0 <= args.recall_share < 1:
        raise SystemExit("--clients and --max-batch must be >= 1, --recall-share in [0, 1)")
    parse_variants(args.variants)  # a bad one fails before anything starts
    print(load_line("at start"), flush=True)
    if args.embed_rate:
        embed_rates(args.embed_rate)
        print(load_line("at end"))
        return
    alone = baselines(args)
    variants = run(args, done=lambda v: report(v, alone))
    compare(variants, alone)
    print(load_line("at end"))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "index_alone": alone,
                    "variants": [
                        {"name": v.name, "episodes": v.episodes, "dumps": v.dumps} for v in variants
                    ],
                }
            )
        )


if __name__ == "__main__":
    main()
