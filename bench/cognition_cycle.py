"""The full cognitive cycle against the real memory and inference services.

Starts, in this process and on loopback Zenoh: an embedded Postgres + pgvector with
the memory service (MiniLM), the inference service (llama.cpp, Gemma 3 270M, CPU), and
the cognition service. It stores ``--episodes`` episodes through cognition itself, then
measures over ``cognition/observe``:

1. the **reflex** cycle (utterances the reflex answers): the same-run baseline;
2. the **full cycle without the LLM** (reflex miss, MiniLM embedding, recall from the
   memory tiers, workspace, active inference, answer from memory or clarify);
3. the **full cycle with the LLM** (deliberation): time to first token and total.

It prints p50/p95/p99 of the client-observed round trip and of the cycle's own total,
the mean per-stage latency, the tiers that served recall, and the ratio to the reflex
baseline. Timings on a shared 2-core machine are noisy: compare ratios.

    .venv/bin/python bench/cognition_cycle.py [--n 300] [--llm 8] [--plot]
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from emily.bus import BusConfig, open_session
from emily.bus.rpc import call, wait_for_server
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from emily.cognition.config import CognitionConfig
from emily.cognition.reflex import Reflex
from emily.cognition.reflex import data as rdata
from emily.cognition.service import CognitionService
from emily.inference.config import InferenceConfig
from emily.inference.service import InferenceService
from emily.inference.store import embedded_model
from emily.memory.config import MemoryConfig
from emily.memory.core import Memory
from emily.memory.embed import Embedder
from emily.memory.embedded import EmbeddedPostgres
from emily.memory.metrics import MemoryMetrics
from emily.memory.service import serve
from emily.memory.store import PgStore

OUT = Path(__file__).resolve().parent / "out"
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(a: list[float]) -> str:
    x = np.asarray(a)
    return (
        f"p50 {np.percentile(x, 50):8.2f}  p95 {np.percentile(x, 95):8.2f}  "
        f"p99 {np.percentile(x, 99):8.2f} ms (n={x.size})"
    )


def run(
    client: object, key: str, texts: list[str], n: int, llm: bool, max_tokens: int = 16
) -> tuple[list[float], list[ObserveReply]]:
    rtt, replies = [], []
    for i in range(n):
        req = ObserveRequest(text=texts[i % len(texts)], allow_llm=llm, max_tokens=max_tokens)
        t0 = time.perf_counter()
        reply = call(client, key, req, ObserveReply, timeout_s=300)  # type: ignore[arg-type]
        rtt.append((time.perf_counter() - t0) * 1e3)
        replies.append(reply)
    return rtt, replies


def report(name: str, rtt: list[float], replies: list[ObserveReply]) -> None:
    print(f"\n{name}")
    print(f"  round trip    {pct(rtt)}")
    print(f"  cycle total   {pct([r.trace.latencies_ms['total'] for r in replies])}")
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
    os.environ["EMILY_STATE_DIR"] = str(root / "state")
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    server_bus = BusConfig(node="bench", listen=(endpoint,), connect=())
    peer_bus = BusConfig(node="bench", listen=(), connect=(endpoint,))
    print("starting Postgres, memory, inference and cognition ...", flush=True)
    reflex = Reflex.load_or_build(root / "reflex")
    cognition = CognitionService(CognitionConfig(), server_bus, reflex, http=False)
    pg = EmbeddedPostgres(root / "pg")
    mcfg = MemoryConfig(state=root / "memory")
    memory_session = open_session(peer_bus)
    memory = serve(
        Memory(mcfg, PgStore(pg.dsn, mcfg), Embedder(device="cpu"), metrics=MemoryMetrics()),
        memory_session,
        peer_bus.keys,
        workers=2,
    )
    icfg = InferenceConfig(
        model_path=embedded_model(root / "models"),
        n_ctx=1024,
        n_threads=2,
        max_tokens=16,
        http_port=free_port(),
    )
    inference = InferenceService(icfg, peer_bus)
    client = open_session(peer_bus)
    key = peer_bus.keys.query("cognition", "observe")
    try:
        assert wait_for_server(client, key, timeout_s=30)
        assert cognition.peers.wait("memory", 60) and cognition.peers.wait("inference", 60)
        run(client, key, FACTS, len(FACTS), llm=False)
        time.sleep(2.0)  # let the episodes reach Postgres
        fired = [
            r.text
            for r in rdata.load_intents()
            if r.intent != rdata.OOS and reflex.fast.decide(r.text).fired
        ]
        run(client, key, fired + QUESTIONS, 30, llm=False)  # warm-up
        base = run(client, key, fired, args.n, llm=False)
        report("1. reflex cycle (baseline)", *base)
        full = run(client, key, QUESTIONS, args.n, llm=False)
        report("2. full cycle without the LLM (recall from memory)", *full)
        llm = run(client, key, DELIBERATE, args.llm, llm=True)
        report("3. full cycle with the LLM (deliberation, max 16 tokens)", *llm)
        ttft = [r.trace.ttft_ms for r in llm[1] if r.trace.ttft_ms is not None]
        if ttft:
            print(f"  time to first token (chat request to first chunk) {pct(ttft)}")
        b99, f99 = np.percentile(base[0], 99), np.percentile(full[0], 99)
        print(f"\nfull/reflex p99 ratio {f99 / b99:.1f}x; target: full cycle p99 <= 20 ms")
        if args.plot:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(6, 4))
            ax.boxplot([base[0], full[0]], showfliers=False)
            ax.set_xticks([1, 2], ["reflex", "full, no LLM"])
            ax.set_ylabel("round trip (ms)")
            OUT.mkdir(exist_ok=True)
            fig.savefig(OUT / "cognition_cycle.png", dpi=120, bbox_inches="tight")
            print(f"plot: {OUT / 'cognition_cycle.png'}")
    finally:
        client.close()
        cognition.close()
        inference.close()
        memory.close()
        memory_session.close()


if __name__ == "__main__":
    main()
