"""Moving episodes between tiers: promotion by frequency and recency, demotion on
idleness and capacity pressure.

Tiers are exclusive caches above L3: an episode is held by at most one of L0, L1
and L2 at a time (and always by L3). An access promotes one step: L3 -> L2 once an
episode has been recalled ``l2_min_accesses`` times (two by default, so one-off
results do not churn the NVMe tier), L2 -> L1 through W-TinyLFU, L1 -> L0 when its
frequency beats L0's coldest entry (sampled LFU). Capacity pressure demotes the
victim one step down (which may cascade); :meth:`TieredMemory.maintain` demotes idle
episodes one step. Every move is counted and recorded as a
:class:`~emily.bus.schemas.memory.MemoryOperation`; the events of one call (one
recall's accesses, one maintenance pass) are published together at its end.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import Counter

from emily.bus.schemas.memory import MAX_OPS, MemoryOperation, MemoryOperations, Tier
from emily.memory.l0 import L0
from emily.memory.l1 import WTinyLFU
from emily.memory.l2 import L2, CorruptSlot
from emily.memory.metrics import MemoryMetrics
from emily.memory.record import Record
from emily.memory.stats import AccessStats

log = logging.getLogger(__name__)
Publish = Callable[[Sequence[MemoryOperation]], None]
Fetch = Callable[[list[uuid.UUID]], dict[uuid.UUID, Record]]
L0_MIN_FREQUENCY = 3
#: L0 entries drawn per eviction decision (sampled LFU)
L0_SAMPLE = 16


class TieredMemory:
    """L0, L1 and L2 above the durable store, with their move rules.

    Parameters
    ----------
    root : directory of L2's files and the access statistics.
    l0 : the tensor tier (its capacity and device are set by the caller).
    l1_capacity, l2_capacity, l2_slot_bytes : tier sizes in episodes, L2 slot bytes.
    idle_s : seconds without access after which :meth:`maintain` demotes one step.
    l2_min_accesses : recalls (counted with decay, see :class:`AccessStats`) before an
        episode enters L2; 1 admits on the first recall. While L2 is offline (its disk is
        full or read-only), such an episode goes straight to L1.
    l2_retry_s : seconds between attempts to grow or reopen L2 after a disk error.
    metrics : counters and gauges to update.
    publish : called with the move, hit and miss events of each call, in order
        (``None``: not published).
    clock : seconds since the epoch (tests pass a fake clock to age episodes).
    """

    def __init__(
        self,
        root: Path,
        l0: L0,
        *,
        l1_capacity: int,
        l2_capacity: int,
        l2_slot_bytes: int = 4096,
        idle_s: float = 3600.0,
        l2_min_accesses: int = 2,
        l2_retry_s: float = 30.0,
        metrics: MemoryMetrics | None = None,
        publish: Publish | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.l0 = l0
        self.l1: WTinyLFU[uuid.UUID] = WTinyLFU(l1_capacity)
        self.l1_data: dict[uuid.UUID, Record] = {}
        self.l2 = L2(root / "l2", l2_capacity, l2_slot_bytes, retry_s=l2_retry_s)
        self.stats = AccessStats(root / "access.npy")
        self.idle_s = idle_s
        # decayed counts: "n accesses lately" is a count above n - 1/2
        self.l2_admit = l2_min_accesses - 0.5
        self.metrics = metrics or MemoryMetrics()
        self.publish = publish
        self.clock = clock
        self.lock = threading.RLock()
        self.tier_of: dict[uuid.UUID, Tier] = dict.fromkeys(self.l2, "L2")
        # L2's eviction order: an L2 hit moves up to L1, so insertion order is recency
        self.l2_order: OrderedDict[uuid.UUID, None] = OrderedDict.fromkeys(self.l2)
        self._floor: tuple[int, int] | None = None  # (L0's lowest frequency, age)
        self.hit_counts: dict[Tier, int] = dict.fromkeys(("L0", "L1", "L2", "L3"), 0)
        self._ops: list[dict[str, object]] = []  # events of the call in progress
        self._moves: dict[tuple[Tier, Tier], Counter] = {}  # labelled move counters
        self._rng = random.Random(0)  # L0 eviction samples (seeded: reproducible runs)
        self._hits = {t: self.metrics.hits.labels(t) for t in ("L0", "L1", "L2", "L3")}
        self._sizes = {t: self.metrics.tier_size.labels(t) for t in ("L0", "L1", "L2")}

    # ------------------------------------------------------------------ moves
    def _event(self, op: dict[str, object]) -> None:
        """Record one event of the current call (fields of :class:`MemoryOperation`)."""
        if self.publish is not None:
            self._ops.append(op)

    def _flush(self) -> None:
        """Publish the events gathered by the current call (lock held by the caller).

        They are validated together, in pydantic's core, at one timestamp: far cheaper
        than a model per move on the request path.
        """
        if self._ops and self.publish is not None:
            ops, self._ops = self._ops, []
            at = datetime.now(UTC)
            for op in ops:
                op["at"] = at
            for i in range(0, len(ops), MAX_OPS):
                self.publish(MemoryOperations.model_validate({"ops": ops[i : i + MAX_OPS]}).ops)

    def _moved(self, key: uuid.UUID, src: Tier, dst: Tier) -> None:
        up = dst < src  # "L0" < "L1" < "L2" < "L3"
        counter = self._moves.get((src, dst))
        if counter is None:
            family = self.metrics.promotions if up else self.metrics.demotions
            counter = self._moves[src, dst] = family.labels(src, dst)
        counter.inc()
        if dst == "L3":
            self.tier_of.pop(key, None)
        else:
            self.tier_of[key] = dst
        self._event(
            {
                "op": "promote" if up else "demote",
                "episode_id": key,
                "from_tier": src,
                "to_tier": dst,
            }
        )

    def _into_l2(self, rec: Record, src: Tier) -> None:
        stored = self.l2.fits(rec)  # False: too long for a slot, or L2 is offline
        if stored:
            self._l2_reconcile()  # L2 may have just come back with slots on disk
            while not self.l2.room() and self.l2.online:
                victim, _ = self.l2_order.popitem(last=False)
                self.l2.discard(victim)
                self._moved(victim, "L2", "L3")
            stored = self.l2.put(rec)
        if stored:
            self.l2_order[rec.id] = None
            self._moved(rec.id, src, "L2")
            return
        self._l2_reconcile()  # the disk may have refused a write
        if src != "L3":  # only L3 keeps it
            self._moved(rec.id, src, "L3")

    def _from_l2(self, key: uuid.UUID) -> None:
        self.l2_order.pop(key, None)
        self.l2.discard(key)
        self._l2_reconcile()

    def _take_out(self, key: uuid.UUID, tier: Tier | None) -> None:
        """Take ``key`` out of cache tier ``tier``'s own structures (the tier map is the
        caller's); an L2 slot is zeroed as it is freed."""
        if tier == "L0":
            self.l0.pop(key)
            self._floor = None
        elif tier == "L1":
            self.l1.discard(key)
            self.l1_data.pop(key)
        elif tier == "L2":
            self._from_l2(key)

    def _l2_reconcile(self) -> None:
        """Bring the tier map in line with L2 after it went offline (what it held is
        L3's only) or came back online (the slots it found are L2's again)."""
        if len(self.l2) == len(self.l2_order) and (self.l2.online or not self.l2_order):
            return
        for key in [k for k in self.l2_order if k not in self.l2]:
            del self.l2_order[key]
            self._moved(key, "L2", "L3")
        for key in self.l2:
            if key in self.l2_order:
                continue
            if key in self.tier_of:  # promoted meanwhile: one tier holds it
                self.l2.discard(key)
            else:
                self.l2_order[key] = None
                self.tier_of[key] = "L2"

    def _l0_coldest(self) -> tuple[uuid.UUID | None, int]:
        """L0's least frequent entry and its sketch frequency, by sampled LFU.

        Up to :data:`L0_SAMPLE` entries are drawn at random and the coldest of them is
        taken (as Redis' LFU does): constant work per eviction instead of a sketch
        estimate for every row of L0. With at most :data:`L0_SAMPLE` entries it is exact.
        """
        if len(self.l0) <= L0_SAMPLE:
            candidates = list(self.l0.records)
        else:
            key_at, n = self.l0.key_at, len(self.l0.key_at)
            candidates = []
            while len(candidates) < L0_SAMPLE:  # more than L0_SAMPLE rows are held
                key = key_at[self._rng.randrange(n)]
                if key is not None:
                    candidates.append(key)
        if not candidates:
            return None, 0
        coldest = min(candidates, key=self.l1.frequency)
        return coldest, self.l1.frequency(coldest)

    def _l0_floor(self) -> int:
        """L0's (sampled) lowest frequency, cached for 256 accesses or until L0 changes."""
        if self._floor is None or self._floor[1] > 256:
            self._floor = (self._l0_coldest()[1], 0)
        self._floor = (self._floor[0], self._floor[1] + 1)
        return self._floor[0]

    def _into_l1(self, rec: Record, src: Tier) -> None:
        self.l1_data[rec.id] = rec
        evicted = self.l1.access(rec.id)
        self._moved(rec.id, src, "L1")
        for victim in evicted:
            self._into_l2(self.l1_data.pop(victim), "L1")

    def _into_l0(self, rec: Record, src: Tier) -> None:
        if self.l0.full:
            coldest, _ = self._l0_coldest()
            assert coldest is not None  # a full L0 holds entries
            self._into_l1(self.l0.pop(coldest), "L0")
        self.l0.put(rec)
        self._floor = None
        self._moved(rec.id, src, "L0")

    def _promote(self, rec: Record) -> None:
        tier = self.tier_of.get(rec.id, "L3")
        if tier == "L3":
            entry = self.stats.get(rec.id)
            if entry is not None and entry.count >= self.l2_admit:
                if self.l2.usable():
                    self._into_l2(rec, "L3")
                else:
                    self._l2_reconcile()
                    self._into_l1(rec, "L3")
        elif tier == "L2":
            self._from_l2(rec.id)
            self._into_l1(rec, "L2")
        elif tier == "L1":
            self.l1.access(rec.id)
            freq = self.l1.frequency(rec.id)
            if (
                self.l0.capacity
                and freq >= L0_MIN_FREQUENCY
                and (not self.l0.full or freq > self._l0_floor())
            ):
                self.l1.discard(rec.id)
                self._into_l0(self.l1_data.pop(rec.id), "L1")
        else:
            self.l1.sketch.add(rec.id)  # L0 entries keep their frequency up to date

    # ------------------------------------------------------------------ API
    def get(self, key: uuid.UUID) -> tuple[Record, Tier] | None:
        """The record and the tier holding it, or ``None`` when only L3 has it."""
        with self.lock:
            tier = self.tier_of.get(key)
            if tier == "L0":
                return self.l0.records[key], tier
            if tier == "L1":
                return self.l1_data[key], tier
            if tier == "L2":
                try:
                    return self.l2.get(key), tier
                except CorruptSlot as exc:
                    log.warning("L2 slot of episode %s is corrupt (%s); read from L3", key, exc)
                    self._from_l2(key)
                    self._moved(key, "L2", "L3")
            return None

    def accessed(self, served: Iterable[tuple[Record, Tier]]) -> None:
        """Count hits and misses of one recall, update statistics, then promote."""
        now = self.clock()
        counts: dict[Tier, int] = {}
        served = list(served)
        with self.lock:
            self.stats.touch_many([rec.id for rec, _ in served], now)
            for rec, tier in served:
                counts[tier] = counts.get(tier, 0) + 1
                self.hit_counts[tier] += 1
                self._promote(rec)
            for tier, n in counts.items():
                if tier == "L3":
                    self.metrics.misses.inc(n)
                    self._event({"op": "miss", "count": n})
                else:
                    self._event({"op": "hit", "tier": tier, "count": n})
                self._hits[tier].inc(n)
            self._flush()
            self.update_gauges()

    def maintain(self) -> int:
        """Demote every episode idle for :attr:`idle_s` one step; returns moves made."""
        now = self.clock()
        moves = 0
        with self.lock:
            keys = list(self.tier_of)
            for key, last in zip(keys, self.stats.lasts(keys).tolist(), strict=True):
                if now - last < self.idle_s:  # never accessed: last is -inf
                    continue
                tier = self.tier_of.get(key, "L3")  # an earlier cascade may have moved it
                if tier == "L0":
                    self._into_l1(self.l0.pop(key), "L0")
                    self._floor = None
                elif tier == "L1":
                    self.l1.discard(key)
                    self._into_l2(self.l1_data.pop(key), "L1")
                elif tier == "L2":
                    self._from_l2(key)
                    self._moved(key, "L2", "L3")
                else:
                    continue
                moves += 1
            self._flush()
            self.update_gauges()
        return moves

    def sizes(self) -> dict[Tier, int]:
        """Episodes held per cache tier."""
        return {"L0": len(self.l0), "L1": len(self.l1_data), "L2": len(self.l2)}

    def update_gauges(self) -> None:
        """Refresh ``emily_memory_tier_size``."""
        for tier, n in self.sizes().items():
            self._sizes[tier].set(n)

    def save(self) -> None:
        """Persist access statistics and tier membership; flush L2."""
        with self.lock:
            self.l2.flush()
            self._l2_reconcile()
            try:
                self.stats.save(self.tier_of, self.clock())
            except OSError as exc:  # a full or read-only state dir: keep serving
                log.error(
                    "access statistics not saved to %s (%s); free space or make the state "
                    "dir writable, or the next start warms up from an older copy",
                    self.stats.path,
                    exc,
                )

    def close(self) -> None:
        """:meth:`save`, then close L2's files."""
        with self.lock:
            self.save()
            self.l2.close()

    def warm_up(self, fetch: Fetch) -> int:
        """Reload L0 and L1 from the persisted statistics; returns episodes restored.

        ``fetch`` reads records from L3 by id. Frequencies are replayed into L1's sketch,
        so admission decisions continue where they stopped.
        """
        saved = self.stats.load()
        with self.lock:
            entries = dict(self.stats.items())
            last = {k: e.last for k, e in entries.items()}
            self.l2_order = OrderedDict.fromkeys(sorted(self.l2, key=lambda k: last.get(k, 0.0)))
            for key, entry in entries.items():
                for _ in range(min(round(entry.count), 15)):
                    self.l1.sketch.add(key)
            hot = sorted(
                (k for k, t in saved.items() if t in ("L0", "L1") and k not in self.tier_of),
                key=lambda k: -entries[k].count,
            )
            # corrupt slots were dropped when L2 opened: their episodes come back from L3
            dropped = [k for k in self.l2.dropped if k not in self.l2]
            self.l2.dropped = []
            records = fetch(hot + dropped) if hot or dropped else {}
            restored = 0
            for key in hot:
                rec = records.get(key)
                if rec is None:
                    continue
                if saved[key] == "L0" and not self.l0.full:
                    self.l0.put(rec)
                    self.tier_of[key] = "L0"
                else:
                    self.l1_data[key] = rec
                    for victim in self.l1.access(key):
                        self._into_l2(self.l1_data.pop(victim), "L1")
                    self.tier_of[key] = "L1"
                restored += 1
            for key in dropped:
                rec = records.get(key)
                if rec is not None and key not in self.tier_of:
                    self._into_l2(rec, "L3")
            self._flush()
        self.update_gauges()
        return restored

    def drop_missing(self, existing: Callable[[list[uuid.UUID]], set[uuid.UUID]]) -> int:
        """Drop cached episodes that L3 no longer holds (a restored or replaced database).

        ``existing`` returns the ids L3 has. Returns how many were dropped.
        """
        with self.lock:
            cached = list(self.tier_of)
            keep = existing(cached) if cached else set()
            dropped = 0
            for key in cached:
                if key in keep:
                    continue
                tier = self.tier_of.pop(key, None)  # None: L2 went offline meanwhile
                self._take_out(key, tier)
                self.stats.pop(key)
                dropped += 1
        self.update_gauges()
        return dropped

    def remove(self, keys: Iterable[uuid.UUID]) -> int:
        """Drop ``keys`` from every cache tier and the access statistics, wiping their L2
        slots (a forget: only L3 decides, and it no longer holds them). Returns how many
        a cache tier held."""
        held = 0
        with self.lock:
            for key in keys:
                tier = self.tier_of.pop(key, None)
                self._take_out(key, tier)
                self.stats.pop(key)
                held += tier is not None
        self.update_gauges()
        return held

    def evict(self, keys: Iterable[uuid.UUID]) -> int:
        """Move ``keys`` from the cache tier holding them down to L3 (demotions, logged);
        returns how many moved."""
        moved = 0
        with self.lock:
            for key in keys:
                tier = self.tier_of.get(key)
                if tier not in ("L0", "L1", "L2"):
                    continue
                self._take_out(key, tier)
                self._moved(key, tier, "L3")
                moved += 1
            self._flush()
        self.update_gauges()
        return moved

    def replace(self, rec: Record) -> Tier:
        """Put ``rec`` where its older version is (a correction); returns that tier.

        An L2 slot too small for the new text leaves it to L3 (a logged demotion).
        """
        with self.lock:
            tier = self.tier_of.get(rec.id, "L3")
            if tier == "L0":
                self.l0.pop(rec.id)
                self.l0.put(rec)
            elif tier == "L1":
                self.l1_data[rec.id] = rec
            elif tier == "L2":
                self.l2.discard(rec.id)
                if not self.l2.put(rec):
                    self.l2_order.pop(rec.id, None)
                    self._moved(rec.id, "L2", "L3")
                    self._flush()
            return tier

    def check(self) -> None:
        """Assert the invariants (tests): tiers disjoint, consistent, within capacity."""
        with self.lock:
            l0, l1, l2 = set(self.l0.records), set(self.l1_data), set(self.l2.slot_of)
            assert not (l0 & l1 or l0 & l2 or l1 & l2), "an episode is in two tiers"
            assert set(self.l1) == l1, "L1 policy and L1 data disagree"
            held = {k: t for k, t in self.tier_of.items()}
            assert held == {
                **dict.fromkeys(l0, "L0"),
                **dict.fromkeys(l1, "L1"),
                **dict.fromkeys(l2, "L2"),
            }, "tier map disagrees with the tiers"
            assert len(l0) <= self.l0.capacity and len(l1) <= self.l1.capacity
            assert len(l2) <= self.l2.capacity
            assert set(self.l2_order) == l2, "L2 eviction order disagrees with L2"
