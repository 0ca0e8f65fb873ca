"""Settings of the ``[memory]`` config section (TOML or ``EMILY_MEMORY__<FIELD>``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from emily.config import load_section, state_dir
from emily.errors import ConfigError


@dataclass(frozen=True)
class MemoryConfig:
    """Memory service settings.

    Attributes
    ----------
    dsn : libpq connection string. Empty: start the embedded Postgres (pgserver) with
        its data under ``<state dir>/pg``. On the host, a unix socket DSN such as
        ``postgresql:///emily?host=/run/postgresql``.
    pool_min, pool_max : connection pool bounds (connections).
    pool_timeout_s : how long a request waits for a pooled connection, in seconds.
    hnsw_m, hnsw_ef_construction : HNSW build parameters (index options).
    ef_search : HNSW search breadth per query (``hnsw.ef_search``).
    max_scan_tuples : cap of an iterative scan (``hnsw.max_scan_tuples``) for filters.
    storage : ``vector`` (float32) or ``halfvec`` (index on float16, half the size).
    search_index : which index answers unfiltered recalls: ``hnswlib`` (an in-process
        HNSW over every L3 embedding, rebuilt from Postgres when missing, saved under
        the state dir) or ``postgres`` (pgvector's HNSW). Filtered recalls, and every
        recall while the in-process index is still being built, go to Postgres.
    index_save_s : seconds between saves of a changed in-process index.
    l0_capacity, l1_capacity, l2_capacity : tier sizes, in episodes.
    l2_slot_bytes : bytes per L2 record slot; longer episodes skip L2.
    idle_s : an episode not accessed for this long moves down one tier, in seconds.
    l2_min_accesses : recalls of an episode before it enters L2 (1: on the first).
    device : ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    metrics_port, metrics_addr : where ``/metrics`` is served (port 0: any free port).
    http_port, http_addr : where the memory HTTP API (``/v1/memories``...) listens; port
        0 turns it off.
    http_max_body_bytes : largest HTTP request body (bytes); larger ones get 413.
    api_key_file : a file holding the bearer token ``/v1/*`` requires; unset, the HTTP
        API is open to whoever reaches ``http_addr``.
    outbox_retry_s : seconds between attempts to drain the outbox.
    workers : bus worker threads per queryable.
    copy_connections : pooled connections one large ingest batch is split over (binary
        ``COPY`` in parallel; the parts commit together once all went through).
    copy_part_rows : fewest rows per connection worth a parallel ``COPY`` part (rows).
    state : directory of the service's durable files; unset means ``<state dir>/memory``.
    consolidate_interval_s : seconds between background consolidation passes (statements
        to facts); 0 runs them only on demand (``emily memory consolidate``).
    merge_threshold : cosine similarity at or above which a user statement merges into
        an earlier one of the same user and agent (its repeat count grows instead).
    llm_extraction : also ask the language model (``inference/generate`` with a JSON
        schema) for the facts of each statement; the pattern extractor always runs.
    inference_node : bus node whose inference service extraction asks; empty means this
        service's own node.
    llm_timeout_s : deadline of one extraction request, in seconds.
    malloc_arena_max : glibc malloc arenas the service may use (``mallopt``, set at
        start, before its threads); fewer arenas keep less freed memory resident. 0
        leaves glibc's own choice (eight per core, or ``MALLOC_ARENA_MAX`` from the
        environment).
    heap_trim_s : seconds between two trims of the heap (``malloc_trim``: freed pages go
        back to the kernel, and ``emily_memory_resident_after_trim_bytes`` is exported).
    events_keep_days : how long the event log (``emily memory events``) keeps an event,
        in days; 0 keeps events whatever their age.
    events_keep_max : the event log keeps at most this many newest events; 0 sets no
        count bound. Both 0 keep every event forever.
    forget_marks_days : how long a forget's mark is kept, in days: until then an episode
        said before the forget and delivered after it (a turn still queued in
        cognition's outbox) is withheld, not stored (:mod:`emily.memory.forget_marks`);
        0 leaves no marks.
    """

    dsn: str = ""
    pool_min: int = 1
    pool_max: int = 4
    pool_timeout_s: float = 5.0
    hnsw_m: int = 16
    hnsw_ef_construction: int = 64
    ef_search: int = 64
    max_scan_tuples: int = 20000
    storage: Literal["vector", "halfvec"] = "vector"
    search_index: Literal["hnswlib", "postgres"] = "hnswlib"
    index_save_s: float = 600.0
    l0_capacity: int = 1024
    l1_capacity: int = 4096
    l2_capacity: int = 65536
    l2_slot_bytes: int = 4096
    idle_s: float = 3600.0
    l2_min_accesses: int = 2
    device: Literal["auto", "cpu", "cuda"] = "auto"
    metrics_port: int = 9461
    metrics_addr: str = "127.0.0.1"
    http_port: int = 8463
    http_addr: str = "127.0.0.1"
    http_max_body_bytes: int = 8 << 20
    api_key_file: Path | None = None
    outbox_retry_s: float = 1.0
    workers: int = 4
    copy_connections: int = 2
    copy_part_rows: int = 2048
    state: Path | None = None
    consolidate_interval_s: float = 30.0
    merge_threshold: float = 0.95
    llm_extraction: bool = False
    inference_node: str = ""
    llm_timeout_s: float = 30.0
    malloc_arena_max: int = 2
    heap_trim_s: float = 30.0
    events_keep_days: float = 30.0
    events_keep_max: int = 1_000_000
    forget_marks_days: float = 7.0

    def __post_init__(self) -> None:
        if self.consolidate_interval_s < 0:
            raise ConfigError("memory.consolidate_interval_s must be >= 0 (0: on demand only)")
        if not 0.0 < self.merge_threshold <= 1.0:
            raise ConfigError("memory.merge_threshold is a cosine similarity in (0, 1]")
        if self.llm_timeout_s <= 0:
            raise ConfigError("memory.llm_timeout_s must be > 0 seconds")
        if not 0 <= self.malloc_arena_max <= 1024:
            raise ConfigError("memory.malloc_arena_max is 0 (glibc's choice) to 1024 arenas")
        if not 0 < self.heap_trim_s <= 3600:
            raise ConfigError("memory.heap_trim_s must be in (0, 3600] seconds")
        if not 0 <= self.events_keep_days <= 36500:
            raise ConfigError(
                "memory.events_keep_days must be in [0, 36500] days (0: no age bound)"
            )
        if self.events_keep_max < 0:
            raise ConfigError("memory.events_keep_max must be >= 0 events (0: no count bound)")
        if not 0 <= self.forget_marks_days <= 365:
            raise ConfigError(
                "memory.forget_marks_days must be in [0, 365] days (0: forgets leave no marks)"
            )

    @classmethod
    def load(cls) -> MemoryConfig:
        """Read ``[memory]`` from the config file and ``EMILY_MEMORY__*`` variables."""
        return load_section(cls, "memory")

    @property
    def root(self) -> Path:
        """Directory of the service's durable files (``<state dir>/memory``)."""
        return self.state if self.state is not None else state_dir() / "memory"
