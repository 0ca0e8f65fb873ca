"""The memory itself: store, recall and stats over L3, the cache tiers and the outbox.

Bus-independent, so the CLI, the service and the benchmarks drive the same code.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence

import numpy as np

from emily.bus.schemas.memory import (
    EMBED_DIM,
    IndexStatus,
    MemoryOperation,
    RecallReply,
    RecallRequest,
    StatsReply,
    StoreReply,
    StoreRequest,
    Tier,
    TierStats,
)
from emily.embed import Embedder
from emily.ids import uuid7
from emily.memory import malloc
from emily.memory.config import MemoryConfig
from emily.memory.errors import StoreUnavailable
from emily.memory.events import LOGGED, EventLog, Retention
from emily.memory.filters import dialogue_only, matches
from emily.memory.forget_marks import ForgetMarks
from emily.memory.hybrid import fuse, graph_candidates
from emily.memory.index import HnswParams
from emily.memory.indexer import Indexer
from emily.memory.l0 import L0, pick_device
from emily.memory.lifecycle import forget_withheld
from emily.memory.metrics import MemoryMetrics
from emily.memory.outbox import Outbox
from emily.memory.record import Record, normalize
from emily.memory.store import PgStore
from emily.memory.tiers import Publish, TieredMemory

log = logging.getLogger(__name__)


class Memory:
    """Tiered episodic memory.

    Parameters
    ----------
    cfg : settings (tier sizes, index parameters, state location).
    store : the opened L3 store.
    embedder : MiniLM, used for texts without embeddings and text queries.
    metrics : the service's collectors.
    publish : sink of ``memory.operations`` events.
    """

    def __init__(
        self,
        cfg: MemoryConfig,
        store: PgStore,
        embedder: Embedder | None,
        *,
        metrics: MemoryMetrics | None = None,
        publish: Publish | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.embedder = embedder
        self.metrics = metrics or MemoryMetrics()
        self.publish = publish
        self.device = pick_device(cfg.device)
        self.events = EventLog(store.connection)
        self.retention = Retention(cfg.events_keep_days, cfg.events_keep_max)
        self.marks = ForgetMarks(store.connection, cfg.forget_marks_days)
        self.metrics.forget_marks.set_function(lambda: len(self.marks))
        self.tiers = TieredMemory(
            cfg.root,
            L0(cfg.l0_capacity, self.device),
            l1_capacity=cfg.l1_capacity,
            l2_capacity=cfg.l2_capacity,
            l2_slot_bytes=cfg.l2_slot_bytes,
            idle_s=cfg.idle_s,
            l2_min_accesses=cfg.l2_min_accesses,
            metrics=self.metrics,
            publish=self._tier_events,
        )
        self.outbox = Outbox(cfg.root / "outbox.sqlite")
        self.indexer: Indexer | None = None
        if cfg.search_index == "hnswlib":
            self.indexer = Indexer(
                store,
                cfg.root / "index",
                HnswParams(m=cfg.hnsw_m, ef_construction=cfg.hnsw_ef_construction),
                ef_search=cfg.ef_search,
                save_every_s=cfg.index_save_s,
            )
            self.indexer.start()
            indexer = self.indexer  # its index is replaced once loaded or rebuilt
            self.metrics.index_slots.set_function(lambda: indexer.index.label_of.used)
        self.metrics.watch_pool(store.pool_stats)
        if embedder is not None:
            self.metrics.embed_shapes.set_function(lambda: len(embedder.shapes))
        self._stop = threading.Event()
        self._draining = threading.Lock()
        self._worker: threading.Thread | None = None
        self.trims = 0  # background malloc_trim calls that released memory
        try:
            restored = self.tiers.warm_up(store.fetch)
            stale = self.tiers.drop_missing(store.existing)
            log.info(
                "warmed up %d hot episodes from saved access statistics; dropped %d cached "
                "episodes Postgres no longer has",
                restored,
                stale,
            )
        except StoreUnavailable:
            log.warning("Postgres unreachable at start; L0/L1 start cold")
        self.drain_outbox()

    # ---------------------------------------------------------------- store
    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.embedder is None:
            raise StoreUnavailable("no embedding model is loaded; send embeddings with the request")
        return self.embedder.embed(texts)

    def store_episodes(self, req: StoreRequest) -> StoreReply:
        """Embed what needs it, assign ids, and commit to L3 (or the outbox)."""
        missing = [i for i, ep in enumerate(req.episodes) if ep.embedding is None]
        computed = self._embed([req.episodes[i].text for i in missing]) if missing else None
        row_of = {i: n for n, i in enumerate(missing)}
        records = []
        for i, ep in enumerate(req.episodes):
            emb = ep.embedding
            if emb is None:
                assert computed is not None
                emb = computed[row_of[i]]
            records.append(Record.from_input(ep, ep.id or uuid7(), normalize(emb)))
        durable = True
        withheld: list[uuid.UUID] = []
        try:
            self.drain_outbox()  # keep order: older queued episodes first
            if self.outbox.pending():
                raise StoreUnavailable("the outbox is still draining")
            withheld = self._insert(records, check=not req.restore)
        except StoreUnavailable as exc:
            if req.restore:  # queued, it would meet the marks on delivery: not restored
                raise
            log.warning("store of %d episodes queued in the outbox: %s", len(records), exc)
            self.outbox.put(records)
            self.metrics.queued.inc(len(records))
            durable = False
        self.metrics.outbox_pending.set(self.outbox.pending())
        self.events.notify()  # stores are logged by Postgres; the relay publishes them
        return StoreReply(
            ids=[r.id for r in records],
            durable=durable,
            queued=0 if durable else len(records),
            withheld=withheld,
        )

    def _insert(self, records: Sequence[Record], check: bool = True) -> list[uuid.UUID]:
        """Commit to L3 what no forget mark withholds (everything when not ``check``),
        then index what Postgres accepted; returns the ids withheld
        (:mod:`emily.memory.forget_marks`)."""
        with self.marks.storing():  # a forget waits for this commit, or this for its mark
            keep, withheld = self.marks.split(records) if check else (list(records), [])
            if keep:
                self.store.insert(keep)
                if self.indexer is not None:
                    self.indexer.add(keep)
        if keep:
            self.metrics.stored.inc(len(keep))
        if withheld:
            with self.store.connection() as conn:  # perception deletes orphaned media
                forget_withheld(conn, withheld)
            self.events.notify()
            # ids only: the text is what the user asked to forget
            log.info("withheld %d episodes an earlier forget covers", len(withheld))
            self.metrics.withheld.inc(len(withheld))
        return [r.id for r in withheld]

    def drain_outbox(self) -> int:
        """Deliver queued episodes to Postgres; returns how many were delivered."""
        if not self.outbox.pending():
            return 0
        with self._draining:  # one drainer at a time: the store path or the background loop
            done = self.outbox.drain(self._insert)
        self.metrics.outbox_pending.set(self.outbox.pending())
        if done:
            log.info("outbox delivered %d episodes", done)
        return done

    def _tier_events(self, ops: Sequence[MemoryOperation]) -> None:
        """Tier moves go to the event log (relayed with their sequence numbers once
        logged); hits and misses, which change nothing, are published at once."""
        self.events.moved(ops)
        reads = [o for o in ops if o.op not in LOGGED]
        if reads and self.publish is not None:
            self.publish(reads)

    # ---------------------------------------------------------------- recall
    def recall(self, req: RecallRequest) -> RecallReply:
        """The ``k`` nearest episodes of ``req.user`` and the tier that served each one."""
        start = time.perf_counter()
        query = self._queries([req])[0]
        served: list[tuple[Record, Tier, float]] = []
        fused: list[float] | None = None
        if req.scope == "hot":
            with self.tiers.lock:
                found = self.tiers.l0.search(
                    query, req.k, req.filters, user=req.user, agent=req.agent
                )[0]
                served = [(self.tiers.l0.records[key], "L0", score) for key, score in found]
        elif req.search == "hybrid":
            served, fused = self._hybrid(query, req)
        else:
            served = self._search_all(query, req, req.k)
        self.tiers.accessed((rec, tier) for rec, tier, _ in served)
        return self._reply(served, time.perf_counter() - start, req.scope, fused)

    def batchable(self, req: RecallRequest) -> bool:
        """Whether :meth:`recall_many` can answer ``req`` with the in-process index."""
        return (
            req.scope == "all"
            and req.search == "vector"
            and dialogue_only(req.filters)
            and self.indexer is not None
            and self.indexer.ready.is_set()
        )

    def recall_many(self, reqs: Sequence[RecallRequest]) -> list[RecallReply]:
        """Several :meth:`batchable` recalls in one pass, replies in the same order.

        One index call per scope and ``ef_search``, one Postgres query for every cold
        body, one bookkeeping pass: under load this is cheaper per recall than
        :meth:`recall` one at a time. Answers are the same as :meth:`recall`'s.
        """
        if not reqs:
            return []
        start = time.perf_counter()
        queries = self._queries(reqs)
        k = max(r.k for r in reqs)
        groups: dict[tuple[object, ...], list[int]] = {}
        for i, r in enumerate(reqs):
            key = (r.ef_search, r.user, r.agent, r.filters.model_dump_json())
            groups.setdefault(key, []).append(i)
        found: list[list[tuple[uuid.UUID, float]]] = [[] for _ in reqs]
        for rows in groups.values():
            first = reqs[rows[0]]
            got = (
                self.indexer.search_scoped(
                    queries[rows], k, first.ef_search, first.user, first.agent, first.filters
                )
                if self.indexer
                else None
            )
            if got is None:  # the index cannot answer: one by one, through Postgres
                return [self.recall(r) for r in reqs]
            for i, hits in zip(rows, got, strict=True):
                found[i] = hits[: reqs[i].k]
        served = [self._in_scope(one, r) for one, r in zip(self._bodies(found), reqs, strict=True)]
        self.tiers.accessed((rec, tier) for one in served for rec, tier, _ in one)
        took = time.perf_counter() - start
        return [self._reply(one, took, "all") for one in served]

    def _queries(self, reqs: Sequence[RecallRequest]) -> np.ndarray:
        """Unit query vectors ``(len(reqs), 384)``; texts are embedded in one batch."""
        out = np.empty((len(reqs), EMBED_DIM), dtype=np.float32)
        texts = [i for i, r in enumerate(reqs) if r.vector is None]
        for i, r in enumerate(reqs):
            if r.vector is not None:
                out[i] = normalize(r.vector)
        if texts:
            out[texts] = self._embed([reqs[i].text or "" for i in texts])
        return out

    def _reply(
        self,
        served: list[tuple[Record, Tier, float]],
        took: float,
        scope: str,
        fused: list[float] | None = None,
    ) -> RecallReply:
        self.metrics.recall_seconds.labels(scope).observe(took)
        # validated in pydantic's core; cached Episode instances pass without a re-check
        return RecallReply.model_validate(
            {
                "hits": [
                    {
                        "episode": r.episode(),
                        "score": max(-1.0, min(1.0, s)),
                        "tier": t,
                        "fused": None if fused is None else fused[i],
                    }
                    for i, (r, t, s) in enumerate(served)
                ],
                "took_ms": took * 1000,
            }
        )

    @staticmethod
    def _in_scope(
        served: list[tuple[Record, Tier, float]], req: RecallRequest
    ) -> list[tuple[Record, Tier, float]]:
        """``served`` without any episode outside ``req``'s scope and filters: every path
        already selects by them; this check makes a leak impossible, not just unlikely."""
        return [row for row in served if matches(req.filters, row[0], req.user, req.agent)]

    def _search_all(
        self, query: np.ndarray, req: RecallRequest, k: int
    ) -> list[tuple[Record, Tier, float]]:
        """``scope="all"``: the ``k`` nearest of the scope, from the in-process index
        when it can answer (the scope and dialogue filters), else from Postgres.

        Bodies come from the fastest tier that holds them; the index path reads the
        rest from L3 by primary key in one query.
        """
        found = None
        if self.indexer is not None and dialogue_only(req.filters):
            got = self.indexer.search_scoped(
                query.reshape(1, -1), k, req.ef_search, req.user, req.agent, req.filters
            )
            found = None if got is None else got[0]
        if found is None:
            ranked = self.store.search_records(
                query, k, req.filters, ef_search=req.ef_search, user=req.user, agent=req.agent
            )
            out: list[tuple[Record, Tier, float]] = []
            for rec, score in ranked:
                got_tier = self.tiers.get(rec.id)
                out.append((got_tier[0], got_tier[1], score) if got_tier else (rec, "L3", score))
            return self._in_scope(out, req)
        return self._in_scope(self._bodies([found])[0], req)

    def _hybrid(
        self, query: np.ndarray, req: RecallRequest
    ) -> tuple[list[tuple[Record, Tier, float]], list[float]]:
        """``search="hybrid"``: vector, full-text and graph candidates of the scope fused
        by reciprocal rank (:mod:`emily.memory.hybrid`); scores stay cosine similarity.
        """
        depth = max(2 * req.k, 20)
        vector = self._search_all(query, req, depth)
        text_ids: list[uuid.UUID] = []
        graph_ids: list[uuid.UUID] = []
        if req.text is not None:
            text_ids = [
                key
                for key, _ in self.store.text_search(
                    req.text, depth, req.filters, user=req.user, agent=req.agent
                )
            ]
            graph_ids = graph_candidates(self.store, req.user, req.text, depth)
        have = {rec.id: row for row in vector for rec in (row[0],)}
        extra = [key for key in dict.fromkeys(text_ids + graph_ids) if key not in have]
        for rec, tier, _ in self._in_scope(self._bodies([[(key, 0.0) for key in extra]])[0], req):
            have[rec.id] = (rec, tier, float(np.dot(query, rec.embedding)))
        rankings = [
            [row[0].id for row in vector],
            [key for key in text_ids if key in have],
            [key for key in graph_ids if key in have],
        ]
        top = fuse(rankings)[: req.k]
        return [have[key] for key, _ in top], [score for _, score in top]

    def _bodies(
        self, found: list[list[tuple[uuid.UUID, float]]]
    ) -> list[list[tuple[Record, Tier, float]]]:
        """Records for ranked ids: from the fastest tier, the rest from L3 in one query."""
        cached = [[(key, score, self.tiers.get(key)) for key, score in one] for one in found]
        cold = list({key for one in cached for key, _, got in one if got is None})
        bodies = self.store.fetch(cold) if cold else {}
        served: list[list[tuple[Record, Tier, float]]] = []
        for one in cached:
            rows: list[tuple[Record, Tier, float]] = []
            for key, score, got in one:
                if got is not None:
                    rows.append((got[0], got[1], score))
                elif key in bodies:  # absent only if L3 lost it since the index saw it
                    rows.append((bodies[key], "L3", score))
            served.append(rows)
        return served

    # ---------------------------------------------------------------- stats
    def stats(self) -> StatsReply:
        """Tier sizes and hit rates, pool statistics and index parameters.

        Raises
        ------
        StoreUnavailable
            Postgres is unreachable (the episode count is unknown).
        """
        sizes = self.tiers.sizes()
        hits = dict(self.tiers.hit_counts)
        total = sum(hits.values()) or 1
        caps = {"L0": self.cfg.l0_capacity, "L1": self.cfg.l1_capacity, "L2": self.cfg.l2_capacity}
        episodes = self.store.count()  # Postgres down: StoreUnavailable, not a made-up 0
        tiers = [
            TierStats(
                tier=t,
                size=sizes[t],
                capacity=caps[t],
                hits=hits[t],
                hit_rate=hits[t] / total,
            )
            for t in ("L0", "L1", "L2")
        ]
        tiers.append(
            TierStats(tier="L3", size=episodes, hits=hits["L3"], hit_rate=hits["L3"] / total)
        )
        return StatsReply(
            episodes=episodes,
            tiers=tiers,
            misses=hits["L3"],
            outbox_pending=self.outbox.pending(),
            pool=self.store.pool_stats(),
            index=self._index_params(),
            device=str(self.device),
        )

    def _index_params(self) -> IndexStatus:
        params = self.store.index_params()
        if self.indexer is None:
            return params
        return params.model_copy(
            update={
                "search_index": "hnswlib",
                "indexed": len(self.indexer.index),
                "index_ready": self.indexer.ready.is_set(),
            }
        )

    # ---------------------------------------------------------------- life
    def start_background(self, period_s: float | None = None) -> None:
        """Start the thread that drains the outbox, demotes idle episodes, saves stats,
        trims the event log and returns freed heap memory to the kernel
        (:mod:`emily.memory.malloc`)."""
        period = period_s if period_s is not None else self.cfg.outbox_retry_s

        # a demotion pass walks every cached episode: run it at a tenth of the idle time
        # (at most once a minute), not on every outbox retry
        maintain_every = min(60.0, self.cfg.idle_s / 10)

        def loop() -> None:
            last_save = last_maintain = last_trim = last_marks = time.monotonic()
            while not self._stop.wait(period):
                try:
                    if time.monotonic() - last_trim >= self.cfg.heap_trim_s:
                        self.trim_heap()
                        last_trim = time.monotonic()
                    self.drain_outbox()
                    if time.monotonic() - last_maintain >= maintain_every:
                        self.tiers.maintain()
                        last_maintain = time.monotonic()
                    if self.indexer is not None:
                        self.indexer.maybe_save()
                    if time.monotonic() - last_save > 30:
                        self.tiers.save()
                        last_save = time.monotonic()
                    self.events.maintain(self.retention, self.metrics)  # bounded log
                    if time.monotonic() - last_marks >= 60:
                        self.marks.trim()
                        last_marks = time.monotonic()
                except Exception:  # keep the maintenance thread alive
                    log.exception("memory maintenance failed; retrying")

        self._worker = threading.Thread(target=loop, name="memory-maintenance", daemon=True)
        self._worker.start()

    def trim_heap(self) -> int:
        """Give freed heap back to the kernel (:func:`malloc.trim`) and export the
        resident set after it; returns that resident set in bytes (0 off Linux)."""
        before = malloc.resident_bytes()
        self.trims += malloc.trim()
        after = malloc.resident_bytes()
        self.metrics.heap_trims.inc()
        self.metrics.heap_returned.inc(max(0, before - after))
        self.metrics.resident_after_trim.set(after)
        return after

    def close(self) -> None:
        """Stop background work, persist tier statistics, close files and the pool."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=10)
        if self.indexer is not None:
            self.indexer.close()
        self.tiers.close()
        self.events.close()
        self.outbox.close()
        self.store.close()
