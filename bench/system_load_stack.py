"""The stack ``bench/system_load.py`` drives, and how it tells when the stack is quiet.

:func:`stack` starts Postgres, memory, inference and cognition in their own processes
as deployed; :func:`drain` waits for cognition's episode outbox to empty, :func:`settle`
for memory's own outbox and episode count to hold still, and :func:`stored_rows` reads
back from Postgres what a run stored, so that lost and duplicated episodes are counted
by id in the durable store itself.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import zenoh
from cognition_common import bus_env, inference_env, process, raw_call, serve_cmd
from common import free_port, scrape

from emily.bus import BusConfig, Keys, open_session
from emily.bus.endpoints import CHAT, OBSERVE, RECALL
from emily.bus.messages import decode, encode
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from emily.bus.schemas.facts import ConsolidateReply, ConsolidateRequest
from emily.bus.schemas.memory import StatsReply, StatsRequest
from emily.cognition.reflex import Reflex
from emily.memory.embedded import EmbeddedPostgres

#: What the first cycles observe until cognition sees the memory service.
WARM_TEXT = "where did I leave the spare key"


def running(pid: int) -> bool:
    """Whether process ``pid`` still runs (not gone, not a zombie its parent has not
    reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


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


def consolidated(client: zenoh.Session, key: str, timeout_s: float = 300.0) -> int:
    """Run memory's consolidation passes (``key``: its ``memory/consolidate``) until one
    finds nothing left, so that no pass holds its statements when memory is measured;
    returns the statements consolidated."""
    payload, done = encode(ConsolidateRequest()), 0
    while n := decode(ConsolidateReply, raw_call(client, key, payload, timeout_s)).episodes:
        done += n
    return done


def cognition_outbox(metrics_url: str) -> tuple[int, dict[str, float]]:
    """Cognition's pending episodes and its episodes by outcome, read from ``/metrics``."""
    got = scrape(metrics_url, timeout_s=30)
    if not got.get("emily_cognition_pending_episodes"):
        raise RuntimeError(f"{metrics_url} has no emily_cognition_pending_episodes")
    pending = int(got["emily_cognition_pending_episodes"][0][1])
    outcomes = {
        labels["outcome"]: value for labels, value in got.get("emily_cognition_episodes_total", [])
    }
    return pending, outcomes


def drain(metrics_url: str, limit_s: float) -> tuple[float, int]:
    """Wait until cognition's episode outbox is empty or ``limit_s`` has passed; returns
    the seconds waited and what is still pending."""
    t0 = time.monotonic()
    while (pending := cognition_outbox(metrics_url)[0]) and time.monotonic() - t0 < limit_s:
        time.sleep(0.5)
    return time.monotonic() - t0, pending


@contextmanager
def stack(
    root: Path, memory_env: dict[str, str] | None = None
) -> Iterator[tuple[zenoh.Session, Keys, dict[str, int], str, str, str]]:
    """Postgres, memory, inference and cognition in their own processes, memory's with
    ``memory_env`` added to its environment; yields the client session, the keys, the
    pids by service, Postgres' DSN and the URLs of cognition's and memory's
    ``/metrics``."""
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
    envs["memory"].update(memory_env or {})
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
    payload = encode(ObserveRequest(text=WARM_TEXT, allow_llm=False, context={"warm": 1}))
    deadline = time.monotonic() + limit_s
    while (
        "memory" in decode(ObserveReply, raw_call(client, OBSERVE.key(keys), payload)).trace.missing
    ):
        if time.monotonic() > deadline:
            raise SystemExit("cognition never saw the memory service")
        time.sleep(0.2)
