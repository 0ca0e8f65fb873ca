"""``emily serve memory``: the memory service on the bus.

Queryables ``emily/<node>/memory/{store,recall,stats,facts,consolidate,forget,correct,
export,events,rebuild}``, events on
``emily/<node>/events/memory.operations``, liveliness ``health/memory`` and
``/metrics`` on port 9461 by default.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import zenoh

from emily.bus import BusConfig, Keys, encode, open_session
from emily.bus.endpoints import (
    CONSOLIDATE,
    CORRECT,
    EVENTS,
    EXPORT,
    FACTS,
    FORGET,
    MEMORY_OPERATIONS,
    REBUILD,
    RECALL,
    STATS,
    STORE,
)
from emily.bus.health import announce
from emily.bus.messages import ErrorReply, Message
from emily.bus.rpc import RequestFailed, Server, internal_error
from emily.bus.schemas.facts import ConsolidateReply, ConsolidateRequest, FactsReply, FactsRequest
from emily.bus.schemas.lifecycle import (
    CorrectReply,
    CorrectRequest,
    EventsReply,
    EventsRequest,
    ExportReply,
    ExportRequest,
    ForgetReply,
    ForgetRequest,
    RebuildReply,
    RebuildRequest,
)
from emily.bus.schemas.memory import (
    MAX_OPS,
    MemoryOperation,
    MemoryOperations,
    RecallReply,
    RecallRequest,
    StatsReply,
    StatsRequest,
    StoreReply,
    StoreRequest,
)
from emily.embed import Embedder
from emily.memory import facts, heapdump, lifecycle, malloc
from emily.memory.config import MemoryConfig
from emily.memory.consolidate import Consolidator
from emily.memory.core import Memory
from emily.memory.embedded import EmbeddedPostgres
from emily.memory.errors import StoreUnavailable
from emily.memory.lifecycle import NotFound
from emily.memory.llm_extract import LlmExtractor
from emily.memory.metrics import MemoryMetrics
from emily.memory.pgcopy import InvalidRecord
from emily.memory.rebuild import rebuild
from emily.memory.store import PgStore
from emily.observe import start_metrics_server
from emily.runtime import run_service

log = logging.getLogger(__name__)


def open_store(cfg: MemoryConfig) -> tuple[PgStore, EmbeddedPostgres | None]:
    """Connect to ``cfg.dsn``, or start the embedded Postgres under the state dir."""
    embedded = None
    dsn = cfg.dsn
    if not dsn:
        embedded = EmbeddedPostgres(cfg.root.parent / "pg")
        dsn = embedded.dsn
    return PgStore(dsn, cfg), embedded


def unavailable(exc: StoreUnavailable) -> RequestFailed:
    """The error reply for Postgres being down: ``unavailable``, retry in a second."""
    return RequestFailed(ErrorReply(code="unavailable", message=str(exc), retry_after_s=1.0))


@contextmanager
def replies() -> Iterator[None]:
    """Turn memory's own errors into the error replies every verb gives: a record
    Postgres would refuse is ``bad_request``, an id the user does not have
    ``not_found``, Postgres down ``unavailable``."""
    try:
        yield
    except InvalidRecord as exc:
        raise RequestFailed(ErrorReply(code="bad_request", message=str(exc))) from exc
    except NotFound as exc:
        raise RequestFailed(ErrorReply(code="not_found", message=str(exc))) from exc
    except StoreUnavailable as exc:
        raise unavailable(exc) from exc


@dataclass
class MemoryService:
    """The memory served on an open Zenoh session (see :func:`serve`)."""

    memory: Memory
    session: zenoh.Session
    keys: Keys
    servers: list[Server] = field(default_factory=list)
    token: zenoh.LivelinessToken | None = None
    consolidator: Consolidator | None = None

    def handle_store(self, req: StoreRequest) -> StoreReply:
        """``memory/store``; a record Postgres would refuse is a ``bad_request`` naming it,
        and Postgres down with no room in the outbox is ``unavailable``."""
        with replies():
            return self.memory.store_episodes(req)

    def handle_recall(self, req: RecallRequest) -> RecallReply:
        """``memory/recall``; Postgres down gives an ``unavailable`` error reply."""
        with replies():
            return self.memory.recall(req)

    def handle_recalls(self, reqs: list[RecallRequest]) -> list[Message]:
        """``memory/recall`` under load: the requests waiting together, one pass for those
        the in-process index answers (:meth:`Memory.recall_many`), the rest one by one."""
        out: list[Message | None] = [None] * len(reqs)
        fast = [i for i, r in enumerate(reqs) if self.memory.batchable(r)]
        if fast:
            try:
                answered = self.memory.recall_many([reqs[i] for i in fast])
                for i, reply in zip(fast, answered, strict=True):
                    out[i] = reply
            except StoreUnavailable as exc:
                for i in fast:
                    out[i] = unavailable(exc).reply
        for i, req in enumerate(reqs):
            if out[i] is None:
                try:
                    out[i] = self.handle_recall(req)
                except RequestFailed as exc:
                    out[i] = exc.reply
                except Exception as exc:  # one failing recall does not fail the others
                    log.exception("recall failed")
                    out[i] = internal_error(exc)
        return [
            m if m is not None else ErrorReply(code="internal", message="no reply") for m in out
        ]

    def handle_stats(self, _req: StatsRequest) -> StatsReply:
        """``memory/stats``."""
        with replies():
            return self.memory.stats()

    def handle_facts(self, req: FactsRequest) -> FactsReply:
        """``memory/facts``; Postgres down gives an ``unavailable`` error reply."""
        with replies():
            return facts.answer(self.memory.store, self.memory.embedder, req)

    def handle_consolidate(self, req: ConsolidateRequest) -> ConsolidateReply:
        """``memory/consolidate``: one pass now; Postgres down is ``unavailable``."""
        assert self.consolidator is not None  # set by serve()
        with replies():
            return self.consolidator.run(req.user, req.limit)

    def handle_forget(self, req: ForgetRequest) -> ForgetReply:
        """``memory/forget``; Postgres down is ``unavailable`` (nothing is forgotten)."""
        with replies():
            return lifecycle.forget(self.memory, req)

    def handle_correct(self, req: CorrectRequest) -> CorrectReply:
        """``memory/correct``; an id the user does not have is ``not_found``."""
        with replies():
            return lifecycle.correct(self.memory, req)

    def handle_export(self, req: ExportRequest) -> ExportReply:
        """``memory/export``: one page of the user's episodes (and facts on the first)."""
        with replies():
            return lifecycle.export(self.memory, req)

    def handle_events(self, req: EventsRequest) -> EventsReply:
        """``memory/events``: the log after ``since`` (and which ``media`` are named)."""
        with replies():
            return lifecycle.events_page(self.memory, req)

    def handle_rebuild(self, _req: RebuildRequest) -> RebuildReply:
        """``memory/rebuild``: rebuild the index and tier map, compare with the running ones."""
        with replies():
            return rebuild(self.memory)

    def close(self) -> None:
        """Stop serving; then close the memory (persisting tier statistics)."""
        for server in self.servers:
            server.close()
        if self.consolidator is not None:
            self.consolidator.close()
        if self.token is not None:
            self.token.undeclare()  # type: ignore[no-untyped-call]
        self.memory.close()


def _from_ram(req: RecallRequest) -> bool:
    """A ``scope="hot"`` recall (L0 only, no I/O) is answered on the Zenoh thread."""
    return req.scope == "hot"


def serve(memory: Memory, session: zenoh.Session, keys: Keys, workers: int = 4) -> MemoryService:
    """Declare memory's queryables and the liveliness token on ``session``, and start
    relaying the event log to ``events/memory.operations``."""
    service = MemoryService(memory, session, keys)
    cfg = memory.cfg
    llm = None
    if cfg.llm_extraction:
        node = Keys(cfg.inference_node) if cfg.inference_node else keys
        llm = LlmExtractor(session, node, timeout_s=cfg.llm_timeout_s)
    service.consolidator = Consolidator(memory, cfg.merge_threshold, llm)
    publisher = session.declare_publisher(MEMORY_OPERATIONS.key(keys))

    def publish(ops: Sequence[MemoryOperation]) -> None:
        for i in range(0, len(ops), MAX_OPS):  # validated by the caller: not again
            publisher.put(encode(MemoryOperations.model_construct(ops=list(ops[i : i + MAX_OPS]))))

    memory.publish = publish  # reads (hits, misses); state changes come from the log
    memory.events.start(publish)
    service.servers = [
        STORE.serve(session, keys, service.handle_store, workers=workers),
        RECALL.serve(
            session,
            keys,
            service.handle_recall,
            workers=workers,
            inline=_from_ram,
            batch=service.handle_recalls,
        ),
        STATS.serve(session, keys, service.handle_stats, workers=1),
        FACTS.serve(session, keys, service.handle_facts, workers=workers),
        CONSOLIDATE.serve(session, keys, service.handle_consolidate, workers=1),
        FORGET.serve(session, keys, service.handle_forget, workers=1),
        CORRECT.serve(session, keys, service.handle_correct, workers=1),
        EXPORT.serve(session, keys, service.handle_export, workers=1),
        EVENTS.serve(session, keys, service.handle_events, workers=1),
        REBUILD.serve(session, keys, service.handle_rebuild, workers=1),
    ]
    service.token = announce(session, keys, "memory")
    return service


def main(args: argparse.Namespace) -> int:
    """Run the memory service until SIGTERM/SIGINT; returns the exit code."""

    from emily.memory.http import start_http  # the HTTP app imports this module

    def start(stack: ExitStack) -> str:
        cfg = MemoryConfig.load()
        if cfg.malloc_arena_max:  # before the threads, so theirs are the bounded arenas
            malloc.set_arena_max(cfg.malloc_arena_max)
        bus = BusConfig.load()
        store, embedded = open_store(cfg)
        metrics = MemoryMetrics()
        memory = Memory(cfg, store, Embedder(), metrics=metrics)
        dumper = heapdump.install(memory)  # None unless EMILY_MEMORY_DIAG is set
        if dumper is not None:
            stack.callback(dumper.stop)
        if embedded is not None:  # a dead embedded Postgres is restarted, not left down
            stack.callback(embedded.watch().stop)
        http = start_metrics_server(metrics.registry, cfg.metrics_port, cfg.metrics_addr)
        stack.callback(http.close)
        session = open_session(bus)
        stack.callback(session.close)
        service = serve(memory, session, bus.keys, cfg.workers)
        stack.callback(service.close)
        api = start_http(service, cfg)
        if api is not None:  # closed before the service: no request outlives the memory
            stack.callback(api.close)
        memory.start_background()
        if cfg.consolidate_interval_s > 0 and service.consolidator is not None:
            service.consolidator.start(cfg.consolidate_interval_s)
        pg = " (embedded Postgres)" if embedded else ""
        return (
            f"memory serving on emily/{bus.node}/memory/*, "
            f"/metrics on {cfg.metrics_addr}:{http.port}{pg}"
        )

    # recalls release the GIL in the index search and in Postgres waits; a shorter
    # switch interval only makes those threads switch more often, costing recalls/s
    return run_service(args, start, switch_interval_s=0.005)
