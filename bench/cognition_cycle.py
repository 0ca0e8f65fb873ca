"""The full cognitive cycle against the real memory and inference services.

Starts each service in its own process, as deployed (``emily serve memory``,
``inference`` and ``cognition``, peers on loopback Zenoh), with an embedded Postgres +
pgvector under memory and llama.cpp (Gemma 3 270M, CPU) under inference; this process
only runs the client. It stores eight facts through cognition itself, then
measures over ``cognition/observe``:

1. the **reflex** cycle (utterances the reflex answers): the same-run baseline;
2. the **full cycle without the LLM** (reflex miss, MiniLM embedding, recall from the
   memory tiers, workspace, active inference, answer from memory or clarify);
3. the **full cycle with the LLM** (deliberation): time to first token and total.

Requests are encoded before each timed loop and replies validated after it. Between
phases the benchmark waits until memory has stored every episode, so one phase's
background stores do not run during the next. It prints p50/p95/p99 of the
client-observed round trip and of the cycle's own total, the mean per-stage latency,
the tiers that served recall, the ratio to the reflex baseline and the load average.
Timings on a shared 2-core machine are noisy: compare ratios.

    .venv/bin/python bench/cognition_cycle.py [--n 300] [--llm 8] [--plot]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cognition_common import bus_env, inference_env, process, raw_call, serve_cmd
from common import free_port, load, load_line, pcts, percentile, pyplot, save_plot

from emily.bus import BusConfig, Keys, open_session
from emily.bus.endpoints import CHAT, OBSERVE, RECALL, STATS
from emily.bus.messages import decode, encode
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from emily.bus.schemas.memory import StatsReply, StatsRequest
from emily.cognition.reflex import Reflex
from emily.cognition.reflex import data as rdata
from emily.memory.embedded import EmbeddedPostgres

FACTS = [
    "My sister Ana's birthday is on the fourteenth of March",
    "The spare key is under the blue flowerpot by the back door",
    "I parked the car on level three of the station garage",
    "My dentist appointment is next Thursday at nine",
    "The wifi password at the cabin is written inside the kitchen cupboard",
    "Tom prefers his coffee black with no sugar",
    "The project deadline moved to the end of the month",
    "I started learning the cello in January",
]
QUESTIONS = [
    "what did I tell you about Ana",
    "where is the spare key",
    "where did I park the car",
    "when is my dentist appointment",
    "where is the cabin wifi password",
    "how does Tom take his coffee",
    "when is the project deadline now",
    "which instrument am I learning",
]
DELIBERATE = [
    "Why is the sky blue?",
    "In one sentence, what is photosynthesis?",
    "Name one benefit of regular exercise.",
    "Why do cats purr?",
]


def run(
    client: object, key: str, texts: list[str], n: int, llm: bool, max_tokens: int = 16
) -> tuple[list[float], list[ObserveReply]]:
    payloads = [encode(ObserveRequest(text=t, allow_llm=llm, max_tokens=max_tokens)) for t in texts]
    rtt, raw = [], []
    for i in range(n):
        t0 = time.perf_counter()
        raw.append(raw_call(client, key, payloads[i % len(payloads)], timeout_s=300))  # type: ignore[arg-type]
        rtt.append((time.perf_counter() - t0) * 1e3)
    return rtt, [decode(ObserveReply, r) for r in raw]  # validated outside the timing


def settle(client: object, key: str, quiet_s: float = 1.0, limit_s: float = 120.0) -> int:
    """Wait until memory's episode count holds still for ``quiet_s``; returns it."""
    payload = encode(StatsRequest())
    last, since, deadline = -1, time.monotonic(), time.monotonic() + limit_s
    while time.monotonic() < deadline:
        n = decode(StatsReply, raw_call(client, key, payload)).episodes  # type: ignore[arg-type]
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
        time.sleep(0.25)
    return last


def report(name: str, rtt: list[float], replies: list[ObserveReply]) -> None:
    print(f"\n{name} (load average {load()})")
    print(f"  round trip    {pcts(rtt, 2)}")
    print(f"  cycle total   {pcts([r.trace.latencies_ms['total'] for r in replies], 2)}")
    stages = Counter[str]()
    for r in replies:
        stages.update(r.trace.latencies_ms)
    mean = {k: v / len(replies) for k, v in stages.items() if k != "total"}  # over all cycles
    print("  mean stage ms " + "  ".join(f"{k}={v:.2f}" for k, v in mean.items()))
    tiers = Counter(r.trace.tier for r in replies)
    served = Counter(m.tier for r in replies for m in r.trace.memories[:1])
    print(f"  answered by   {dict(tiers)}; best memory served from {dict(served)}")
    missing = Counter(m for r in replies for m in r.trace.missing)
    if missing:
        print(f"  missing       {dict(missing)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="cycles per no-LLM measurement")
    parser.add_argument("--llm", type=int, default=8, help="deliberation cycles")
    parser.add_argument("--plot", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cognition-cycle-"))
    state, node = root / "state", "bench"
    mem_ep, inf_ep, cog_ep = (f"tcp/127.0.0.1:{free_port()}" for _ in range(3))
    print(load_line("at start"))
    print("starting Postgres, memory, inference, cognition ...")
    reflex = Reflex.load_or_build(state / "cognition")  # trained here, loaded by the service
    pg = EmbeddedPostgres(root / "pg")
    client = open_session(BusConfig(node=node, listen=(), connect=(mem_ep, inf_ep, cog_ep)))
    keys = Keys(node)
    key = OBSERVE.key(keys)
    memory_env = bus_env(
        mem_ep,
        node,
        state,
        EMILY_MEMORY__DSN=pg.dsn,
        EMILY_MEMORY__METRICS_PORT="0",
        EMILY_MEMORY__WORKERS="2",
    )
    infer_env = inference_env(inf_ep, node, state, root / "models", (mem_ep,))
    cognition_env = bus_env(
        cog_ep, node, state, (mem_ep, inf_ep), EMILY_COGNITION__HTTP_PORT=str(free_port())
    )
    try:
        with (
            process(serve_cmd("memory"), memory_env, client, RECALL.key(keys)),
            process(serve_cmd("inference"), infer_env, client, CHAT.key(keys)),
            process(serve_cmd("cognition"), cognition_env, client, key),
        ):
            stats = STATS.key(keys)
            deadline = time.monotonic() + 60
            while "memory" in run(client, key, QUESTIONS[:1], 1, llm=False)[1][0].trace.missing:
                if time.monotonic() > deadline:  # cognition follows liveliness tokens
                    raise SystemExit("cognition never saw the memory service")
                time.sleep(0.2)
            run(client, key, FACTS, len(FACTS), llm=False)
            fired = [
                r.text
                for r in rdata.load_intents()
                if r.intent != rdata.OOS and reflex.fast.decide(r.text).fired
            ]
            run(client, key, fired + QUESTIONS, 30, llm=False)  # warm-up
            print(f"memory holds {settle(client, stats)} episodes")
            base = run(client, key, fired, args.n, llm=False)
            report("1. reflex cycle (baseline)", *base)
            print(f"memory holds {settle(client, stats)} episodes")
            full = run(client, key, QUESTIONS, args.n, llm=False)
            report("2. full cycle without the LLM (recall from memory)", *full)
            settle(client, stats)
            llm = run(client, key, DELIBERATE, args.llm, llm=True)
            report("3. full cycle with the LLM (deliberation, max 16 tokens)", *llm)
    finally:
        client.close()  # type: ignore[no-untyped-call]
    ttft = [r.trace.ttft_ms for r in llm[1] if r.trace.ttft_ms is not None]
    if ttft:
        print(f"  time to first token (chat request to first chunk) {pcts(ttft, 2)}")
    b99, f99 = percentile(base[0], 99), percentile(full[0], 99)
    print(f"\nfull/reflex p99 ratio {f99 / b99:.1f}x; target: full cycle p99 <= 20 ms")
    if args.plot:
        fig, ax = pyplot().subplots(figsize=(6, 4))
        ax.boxplot([base[0], full[0]], showfliers=False)
        ax.set_xticks([1, 2], ["reflex", "full, no LLM"])
        ax.set_ylabel("round trip (ms)")
        save_plot(fig, "cognition_cycle.png")
    print(load_line("at end"))


if __name__ == "__main__":
    main()
