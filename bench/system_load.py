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
(``bench/index_rss.py``).

    .venv/bin/python bench/system_load.py [--clients 50] [--duration 300] [--json F] [--plot]
        [--drain-limit 600]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hnswlib
import numpy as np
import psycopg
import zenoh
from cognition_common import bus_env, inference_env, process, raw_call, serve_cmd
from common import (
    free_port,
    load_line,
    percentile,
    pss_tree_kib,
    pyplot,
    rss_kib,
    save_plot,
    table,
)
from index_rss import measure as index_alone
from index_rss import per_element

from emily.bus import BusConfig, Keys, open_session
from emily.bus.endpoints import CHAT, OBSERVE, RECALL, STATS, STORE
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
from emily.memory.embedded import EmbeddedPostgres

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
        acked, degraded, tier = self._check(path, raw)
        with out.lock:
            out.lat[path].append((start - t0, ms))
            out.degraded[path] += degraded
            out.tiers[path][tier] += 1
            if acked is not None:
                out.acked[tag] = acked

    @staticmethod
    def _check(path: str, raw: bytes) -> tuple[uuid.UUID | None, bool, str]:
        """(the id stored, degraded, who answered) of one reply."""
        if path == "store":
            store = decode(StoreReply, raw)
            return store.ids[0], not store.durable, "memory"
        if path == "recall":
            hits = decode(RecallReply, raw).hits
            return None, not hits, hits[0].tier if hits else "none"
        trace = decode(ObserveReply, raw).trace
        stored = trace.cycle_id if trace.episode != "skipped" else None
        return stored, bool(trace.missing), trace.tier


def drive(driver: Driver, clients: int, duration_s: float, seed: int, out: Outcome) -> float:
    """``clients`` closed-loop threads for ``duration_s``; returns the wall time (s)."""
    t0 = time.perf_counter()
    stop = t0 + duration_s

    def client(c: int) -> None:
        rng = random.Random(seed * 1000 + c)
        i = 0
        while time.perf_counter() < stop:
            path = rng.choices(PATHS, WEIGHTS)[0]
            driver.once(path, f"{path}-{seed}-{c}-{i}", rng, out, t0)
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


class Sampler:
    """Samples every process's memory (KiB) and memory's episode count each ``every_s``,
    and, from ``kept()`` (memory's heap trims so far, its resident bytes after the last
    and its embedder's input shapes), one row ``(s, episodes, bytes, shapes)`` in
    ``kept_rows`` per new trim."""

    def __init__(
        self,
        pids: dict[str, int],
        episodes: Callable[[], int],
        kept: Callable[[], tuple[int, int, int]] | None = None,
        every_s: float = 1.0,
    ):
        self.pids, self.episodes, self.kept, self.every_s = pids, episodes, kept, every_s
        self.rows: list[tuple[float, int, dict[str, int]]] = []
        self.kept_rows: list[tuple[float, int, int, int]] = []
        self._trims = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self.t0 = time.perf_counter()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every_s)

    def sample(self) -> tuple[float, int, dict[str, int]]:
        """One row: (s since start, episodes in memory, KiB per process)."""
        kib = {
            name: pss_tree_kib(pid) if name == "postgres" else rss_kib(pid)
            for name, pid in self.pids.items()
        }
        try:
            n = self.episodes()
        except Exception:  # memory busy past the stats deadline: skip the count
            n = self.rows[-1][1] if self.rows else 0
        row = (time.perf_counter() - self.t0, n, kib)
        self.rows.append(row)
        if self.kept is not None:
            try:
                trims, kept, shapes = self.kept()
            except OSError:  # metrics busy: the next sample reads it
                return row
            if trims > self._trims >= 0 and kept > 0:
                self.kept_rows.append((row[0], n, kept, shapes))
            self._trims = max(self._trims, trims)
        return row

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def index_bytes_per_episode(cfg: MemoryConfig, n: int = 4000) -> float:
    """Bytes per element of an hnswlib index with memory's parameters (its serialised
    size over ``n`` random unit vectors), plus the 16-byte id the service keeps per label."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    idx = hnswlib.Index("cosine", 384)
    idx.init_index(max_elements=n, M=cfg.hnsw_m, ef_construction=cfg.hnsw_ef_construction)
    idx.add_items(x)
    return float(idx.index_file_size()) / n + 16


def stored_rows(dsn: str, run: str) -> tuple[list[tuple[uuid.UUID, str]], dict[uuid.UUID, bool]]:
    """(id, seq) of every episode in Postgres stored by run ``run``, and every episode
    consolidation merged into an earlier one (its row deleted, logged as a ``merge``
    event): whether the episode it went into, followed to the end, is still there."""
    with psycopg.connect(dsn) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # one snapshot
        rows = conn.execute(
            "SELECT id, context->>'seq' FROM episodes WHERE context->>'load' = %s", (run,)
        ).fetchall()
        into: dict[uuid.UUID, uuid.UUID] = {}
        if conn.execute("SELECT to_regclass('memory_events')").fetchone() != (None,):
            merges = conn.execute(
                "SELECT episode_id, detail->>'into' FROM memory_events WHERE op = 'merge'"
            ).fetchall()
            into = {m[0]: uuid.UUID(m[1]) for m in merges}
        targets = list({t for t in into.values() if t not in into})
        have = {
            r[0] for r in conn.execute("SELECT id FROM episodes WHERE id = ANY(%s)", (targets,))
        }
    merged = {}
    for src, dst in into.items():
        seen = {src}
        while dst in into and dst not in seen:  # a chain of merges ends at a kept row
            seen.add(dst)
            dst = into[dst]
        merged[src] = dst in have
    return [(r[0], r[1]) for r in rows], merged


def settle(client: zenoh.Session, key: str, quiet_s: float = 10.0) -> int:
    """Wait until memory's outbox is empty and its episode count holds still for
    ``quiet_s`` (cognition's own outbox drains into it meanwhile); returns the count."""
    payload, last, since = encode(StatsRequest()), -1, time.monotonic()
    while True:
        stats = decode(StatsReply, raw_call(client, key, payload, timeout_s=60))
        n = stats.episodes
        if n != last or stats.outbox_pending:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return last
        time.sleep(0.5)


def memory_kept(metrics_url: str) -> tuple[int, int, int]:
    """Memory's heap trims so far, its resident bytes after the last and the input
    shapes its embedder has run, from ``/metrics``."""
    with urllib.request.urlopen(metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    got = dict.fromkeys(
        (
            "emily_memory_heap_trims_total",
            "emily_memory_resident_after_trim_bytes",
            "emily_memory_embed_shapes",
        ),
        -1,
    )
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in got:
            got[name] = int(float(value))
    if min(got.values()) < 0:
        raise RuntimeError(f"{metrics_url} lacks one of {sorted(got)}")
    trims, kept, shapes = got.values()
    return trims, kept, shapes


def kept_growth(rows: list[tuple[float, int, int, int]]) -> tuple[float, float, float]:
    """Memory's kept bytes per stored episode from its rows after each trim (whole run,
    second half), and the index alone's per element grown to the same counts
    (``nan`` with fewer than 4 trims)."""
    if len(rows) < 4:
        return float("nan"), float("nan"), float("nan")
    n = np.array([r[1] for r in rows], float)
    b = np.array([r[2] for r in rows], float)
    h = len(rows) // 2
    counts = sorted({max(1, r[1]) for r in rows})
    alone = per_element(index_alone("index", counts)) if len(counts) >= 4 else float("nan")
    return float(np.polyfit(n, b, 1)[0]), float(np.polyfit(n[h:], b[h:], 1)[0]), alone


def cognition_outbox(metrics_url: str) -> tuple[int, dict[str, float]]:
    """Cognition's pending episodes and its episodes by outcome, read from ``/metrics``."""
    with urllib.request.urlopen(metrics_url, timeout=30) as resp:
        text = resp.read().decode()
    pending, outcomes = -1, {}
    for line in text.splitlines():
        if line.startswith("emily_cognition_pending_episodes "):
            pending = int(float(line.split()[-1]))
        elif line.startswith("emily_cognition_episodes_total{"):
            label = line.split('outcome="', 1)[1].split('"', 1)[0]
            outcomes[label] = float(line.split()[-1])
    if pending < 0:
        raise RuntimeError(f"{metrics_url} has no emily_cognition_pending_episodes")
    return pending, outcomes


def drain(metrics_url: str, limit_s: float) -> tuple[float, int]:
    """Wait until cognition's episode outbox is empty or ``limit_s`` has passed; returns
    the seconds waited and what is still pending."""
    t0 = time.monotonic()
    while (pending := cognition_outbox(metrics_url)[0]) and time.monotonic() - t0 < limit_s:
        time.sleep(0.5)
    return time.monotonic() - t0, pending


@contextmanager
def stack(root: Path) -> Iterator[tuple[zenoh.Session, Keys, dict[str, int], str, str, str]]:
    """Postgres, memory, inference and cognition in their own processes; yields the
    client session, the keys, the pids by service, Postgres' DSN and the URLs of
    cognition's and memory's ``/metrics``."""
    state, node = root / "state", "load"
    mem_ep, inf_ep, cog_ep = (f"tcp/127.0.0.1:{free_port()}" for _ in range(3))
    Reflex.load_or_build(state / "cognition")  # trained once here, loaded by the service
    pg = EmbeddedPostgres(root / "pg", stop_on_exit=False)
    client = open_session(BusConfig(node=node, listen=(), connect=(mem_ep, inf_ep, cog_ep)))
    keys = Keys(node)
    cog_http = free_port()
    envs = {
        "memory": bus_env(mem_ep, node, state, EMILY_MEMORY__DSN=pg.dsn),
        "inference": inference_env(inf_ep, node, state, root / "models", (mem_ep,)),
        "cognition": bus_env(
            cog_ep, node, state, (mem_ep, inf_ep), EMILY_COGNITION__HTTP_PORT=str(cog_http)
        ),
    }
    mem_metrics = free_port()
    envs["memory"]["EMILY_MEMORY__METRICS_PORT"] = str(mem_metrics)
    envs["memory"]["EMILY_MEMORY__HTTP_PORT"] = str(free_port())
    serves = {
        "memory": RECALL.key(keys),
        "inference": CHAT.key(keys),
        "cognition": OBSERVE.key(keys),
    }
    try:
        with ExitStack() as procs:
            pids = {"postgres": pg.pid}
            for name, key in serves.items():
                pids[name] = procs.enter_context(
                    process(serve_cmd(name), envs[name], client, key)
                ).pid
            yield (
                client,
                keys,
                pids,
                pg.dsn,
                f"http://127.0.0.1:{cog_http}/metrics",
                f"http://127.0.0.1:{mem_metrics}/metrics",
            )
    finally:
        client.close()  # type: ignore[no-untyped-call]
        pg.stop()


def until_cognition_sees_memory(client: zenoh.Session, keys: Keys, limit_s: float = 120) -> None:
    """Cognition follows liveliness tokens: wait until a cycle reaches memory."""
    payload = encode(ObserveRequest(text=QUESTIONS[0], allow_llm=False, context={"warm": 1}))
    deadline = time.monotonic() + limit_s
    while (
        "memory" in decode(ObserveReply, raw_call(client, OBSERVE.key(keys), payload)).trace.missing
    ):
        if time.monotonic() > deadline:
            raise SystemExit("cognition never saw the memory service")
        time.sleep(0.2)


def growth(rows: list[tuple[float, int, dict[str, int]]], name: str) -> tuple[float, float]:
    """Bytes per stored episode of process ``name``: least-squares slope of its memory
    against memory's episode count over all ``rows``, and over their second half."""

    def slope(part: list[tuple[float, int, dict[str, int]]]) -> float:
        n = np.array([r[1] for r in part], dtype=float)
        kib = np.array([r[2][name] for r in part], dtype=float)
        if len(part) < 3 or np.ptp(n) == 0:
            return float("nan")
        return float(np.polyfit(n, kib * 1024, 1)[0])

    return slope(rows), slope(rows[len(rows) // 2 :])


def swings(
    rows: list[tuple[float, int, dict[str, int]]], name: str, window_s: float = 30.0
) -> list[tuple[float, int, float, float]]:
    """Per whole ``window_s`` of samples (memory gives freed heap back every 30 s): its
    start (s), the episodes at its least sample, and process ``name``'s least and
    greatest size (MiB)."""
    out = []
    last = int(rows[-1][0] // window_s) if rows else 0
    for w in range(last):
        part = [r for r in rows if w * window_s <= r[0] < (w + 1) * window_s]
        if part:
            low = min(part, key=lambda r: r[2][name])
            high = max(r[2][name] for r in part)
            out.append((w * window_s, low[1], low[2][name] / 1024, high / 1024))
    return out


def run(
    clients: int,
    duration_s: float,
    n_base: int = 30,
    seed: int = 1,
    root: Path | None = None,
    drain_limit_s: float = 600.0,
) -> dict[str, Any]:
    """Start the stack under ``root`` (a fresh temporary dir, removed afterwards, when
    ``None``), measure the baseline and the load; returns every figure (see the module
    docstring) as plain JSON-able values."""
    if root is None:
        with tempfile.TemporaryDirectory(prefix="system-load-") as tmp:
            return run(clients, duration_s, n_base, seed, Path(tmp), drain_limit_s)
    run_id = f"load-{uuid.uuid4().hex[:8]}"
    per_index = index_bytes_per_episode(MemoryConfig())
    with stack(root) as (client, keys, pids, dsn, cog_metrics, mem_metrics):
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

        out = Outcome()
        with Sampler(pids, episodes, lambda: memory_kept(mem_metrics)) as sampler:
            wall = drive(driver, clients, duration_s, seed, out)
            ended = time.monotonic()
            pending_at_end = cognition_outbox(cog_metrics)[0]
            drain_s, still_pending = drain(cog_metrics, drain_limit_s)
            settle(client, stats_key)
            settled_s = time.monotonic() - ended
            sampler.sample()
        outcomes = cognition_outbox(cog_metrics)[1]
        rows, merged = stored_rows(dsn, run_id)
        index = decode(StatsReply, raw_call(client, stats_key, encode(StatsRequest()))).index
    acked = {**base.acked, **out.acked}
    in_pg = Counter(i for i, _ in rows)
    per_seq = Counter(s for _, s in rows)
    lost = [str(i) for i in acked.values() if i not in in_pg and not merged.get(i, False)]
    lost_set = set(lost)
    dup = sorted(s for s, c in per_seq.items() if c > 1)
    load_rows = [r for r in sampler.rows if r[0] <= wall + 1e-9] or sampler.rows
    mem = {
        name: {
            "start_mib": sampler.rows[0][2][name] / 1024,
            "end_mib": sampler.rows[-1][2][name] / 1024,
            "bytes_per_episode": growth(load_rows, name)[0],
            "bytes_per_episode_2nd_half": growth(load_rows, name)[1],
        }
        for name in pids
    }
    kept_rows = [r for r in sampler.kept_rows if r[0] <= wall + 1e-9]
    whole, half, alone = kept_growth(kept_rows)
    mem["memory"].update(
        kept_bytes_per_episode=whole, kept_bytes_per_episode_2nd_half=half, index_alone=alone
    )
    return {
        "clients": clients,
        "duration_s": wall,
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
            }
            for p in PATHS
        },
        "requests": sum(len(v) for v in out.lat.values()),
        "errors": sum(out.errors.values()) + sum(base.errors.values()),
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
        "samples": [(t, n, kib) for t, n, kib in sampler.rows],
        "kept_after_trims": kept_rows,
    }


def _pct(lat: list[tuple[float, float]], q: float) -> float:
    return percentile([ms for _, ms in lat], q) if lat else float("nan")


def report(r: dict[str, Any]) -> None:
    """Print the tables of one :func:`run`."""
    took, la = r["duration_s"], r["load_average"]
    print(f"\n{r['clients']} clients for {took:.0f} s (load average {la:.1f})")
    rows = []
    for p, s in r["paths"].items():
        ratio = s["p50_ms"] / s["base_p50_ms"] if s["base_p50_ms"] > 0 else float("nan")
        rows.append(
            (
                p,
                s["n"],
                f"{s['per_s']:.1f}",
                f"{s['p50_ms']:.1f}",
                f"{s['p99_ms']:.1f}",
                f"{s['base_p50_ms']:.1f}",
                f"{s['base_p99_ms']:.1f}",
                f"{ratio:.1f}x",
                s["errors"],
                s["degraded"],
            )
        )
    head = (
        "path",
        "requests",
        "req/s",
        "p50 ms",
        "p99 ms",
        "1-client p50",
        "1-client p99",
        "p50 vs 1 client",
        "errors",
        "degraded",
    )
    print(table(head, rows))
    for p, s in r["paths"].items():
        print(f"  {p} answered by {s['answered_by']}")
        if s["first_error"]:
            print(f"  first {p} error: {s['first_error']}")
    print(
        f"\nall paths {r['requests'] / r['duration_s']:.1f} req/s; errors {r['errors']}; "
        f"episodes acknowledged {r['acked_episodes']}, in Postgres {r['episodes_in_postgres']}, "
        f"merged by consolidation into a kept one {r['merged']}: "
        f"lost {r['lost']} {r['lost_by_path']}, duplicated {r['duplicated']}, "
        f"in Postgres but never acknowledged {r['unacked_in_postgres']}; indexed {r['indexed']}"
    )
    out = r["cognition_episodes"]
    print(
        f"cognition's episode outbox: {r['cognition_pending_at_end_of_load']} pending when the "
        f"load ended, drained in {r['cognition_drain_s']:.1f} s "
        f"({r['cognition_pending_at_count']} still pending when counted; memory settled "
        f"{r['drained_and_settled_s']:.1f} s after the load); its episodes by outcome "
        f"{ {k: int(v) for k, v in sorted(out.items())} }"
    )
    mrows = [
        (
            name,
            f"{m['start_mib']:.0f}",
            f"{m['end_mib']:.0f}",
            f"{m['bytes_per_episode']:,.0f}",
            f"{m['bytes_per_episode_2nd_half']:,.0f}",
        )
        for name, m in r["memory"].items()
    ]
    print("\nresident memory (postgres: PSS of all its processes), growth per stored episode")
    print(table(("process", "start MiB", "end MiB", "B/episode", "B/episode, 2nd half"), mrows))
    own, grew = r["index_bytes_per_episode"], r["memory"]["memory"]["bytes_per_episode_2nd_half"]
    print(
        f"in-process HNSW index's own size: {own:,.0f} B/episode; the memory service grew "
        f"{grew:,.0f} B/episode over the second half ({grew / own:.2f}x the index's)"
    )
    m = r["memory"]["memory"]
    kept, alone = m.get("kept_bytes_per_episode_2nd_half"), m.get("index_alone")
    if kept is not None and alone is not None and alone == alone:
        print(
            f"memory kept (its resident set right after each of {len(r['kept_after_trims'])} "
            f"heap trims): {m['kept_bytes_per_episode']:,.0f} B/episode, {kept:,.0f} over "
            f"the second half; the index alone at the same counts: {alone:,.0f} B/element "
            f"({kept / alone:.2f}x)"
        )
        print(
            table(
                ("trim at s", "episodes", "kept MiB", "embedder input shapes"),
                [
                    (f"{t:.0f}", f"{n:,}", f"{b / 2**20:.1f}", shapes)
                    for t, n, b, shapes in r["kept_after_trims"]
                ],
            )
        )
    rows = [tuple(s) for s in r["samples"] if s[0] <= r["duration_s"] + 1e-9]
    spans = swings(rows, "memory")  # type: ignore[arg-type]
    print("\nmemory's resident size per 30 s of load (it trims freed heap every 30 s)")
    print(
        table(
            ("from s", "episodes at the least", "least MiB", "greatest MiB"),
            [(f"{t:.0f}", f"{n:,}", f"{lo:.1f}", f"{hi:.1f}") for t, n, lo, hi in spans],
        )
    )


def plot(r: dict[str, Any], filename: str = "system_load_rss.png") -> Path:
    """Resident memory of each process against time, and the episode count."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    t = [s[0] for s in r["samples"]]
    for name in r["memory"]:
        ax.plot(t, [s[2][name] / 1024 for s in r["samples"]], label=name)
    ax.set_xlabel("time since the load started (s)")
    ax.set_ylabel("resident memory (MiB; postgres: PSS)")
    ax.legend(loc="upper left")
    ax2 = ax.twinx()
    ax2.plot(t, [s[1] for s in r["samples"]], "k--", label="episodes")
    ax2.set_ylabel("episodes in memory (dashed)")
    ax.set_title(f"{r['clients']} clients, {r['duration_s']:.0f} s")
    return save_plot(fig, filename)


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
    ap.add_argument("--report", type=Path, help="only print the report of a --json file")
    args = ap.parse_args()
    if args.report:
        report(json.loads(args.report.read_text()))
        return
    if args.clients < 1 or args.duration <= 0 or args.baseline < 1 or args.drain_limit < 0:
        raise SystemExit(
            "--clients and --baseline must be at least 1, --duration above 0,"
            " --drain-limit at least 0"
        )
    print(load_line("at start"), flush=True)
    r = run(args.clients, args.duration, args.baseline, drain_limit_s=args.drain_limit)
    report(r)
    print(load_line("at end"))
    if args.json:
        args.json.write_text(json.dumps(r, indent=1))
    if args.plot:
        plot(r)


if __name__ == "__main__":
    main()
