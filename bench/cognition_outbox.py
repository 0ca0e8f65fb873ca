"""What keeping a cycle's episodes durable before its reply costs the reply.

Each cycle writes its two episodes (the user's turn, with its MiniLM embedding when the
cycle computed one, and the answer) to the SQLite outbox before the reply is returned.
This benchmark runs the real cycle (both reflex stages, MiniLM, the dialogue-act
classifier) in this process on three :class:`~emily.cognition.cycle.Cognition`
instances, interleaved request by request (each first in turn) so that every one sees
the same load:

- **no outbox** (no bus, so nothing is stored): the same-run baseline;
- **outbox, sync=normal** (the default: survives cognition being killed);
- **outbox, sync=full** (an fsync per cycle: survives a power loss too).

Memory is absent for the two with an outbox (their bus session sees no memory
service), so each cycle's episodes stay queued and nothing is sent; the timed part is
:meth:`~emily.cognition.cycle.Cognition.start` plus
:meth:`~emily.cognition.cycle.Cognition.complete`, the work a server does before it
sends the reply (the after-reply steps run untimed). Two kinds of cycle: utterances the
n-gram reflex answers (no embedding: small episodes), and questions that go through the
full cycle (the embedding is stored with the turn). It prints p50/p95/p99 per variant,
the difference to the baseline and the load average.

    .venv/bin/python bench/cognition_outbox.py [--n 2000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import free_port, load_line, pcts, percentile, table

from emily.bus import BusConfig, Keys, open_session
from emily.bus.health import Peers
from emily.bus.schemas.cognition import ObserveRequest
from emily.cognition.clients import MemoryClient
from emily.cognition.config import CognitionConfig
from emily.cognition.cycle import Cognition
from emily.cognition.reflex import Reflex
from emily.cognition.reflex import data as rdata

QUESTIONS = [
    "where did I park the car",
    "when is my dentist appointment",
    "how does Tom take his coffee",
    "which instrument am I learning",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="cycles per variant and kind")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cognition-outbox-"))
    print(load_line("at start"))
    # one reflex each (trained once, then loaded): STDP adapts a variant's own weights
    reflexes = [Reflex.load_or_build(root / "reflex") for _ in range(3)]
    reflex = reflexes[0]
    bus = BusConfig(node="outbox-bench", listen=(f"tcp/127.0.0.1:{free_port()}",), connect=())
    session = open_session(bus)
    keys = Keys("outbox-bench")
    peers = Peers(session, keys)
    memory = MemoryClient(session, keys, peers)  # no memory service: episodes stay queued
    cfg = CognitionConfig(pending_max=10 * args.n)
    variants = {
        "no outbox (baseline)": Cognition(reflexes[0], cfg),
        "outbox, sync=normal": Cognition(reflexes[1], cfg, memory, outbox=root / "normal.sqlite"),
        "outbox, sync=full": Cognition(
            reflexes[2],
            CognitionConfig(pending_max=10 * args.n, outbox_sync="full"),
            memory,
            outbox=root / "full.sqlite",
        ),
    }
    for c in variants.values():
        c.warm_up()
    fired = [
        r.text
        for r in rdata.load_intents()
        if r.intent != rdata.OOS and reflex.fast.decide(r.text).fired
    ][:50]
    rows = []
    try:
        for kind, texts in (("reflex answers", fired), ("full cycle", QUESTIONS)):
            requests = [ObserveRequest(text=t, allow_llm=False) for t in texts]
            ms: dict[str, list[float]] = {name: [] for name in variants}
            for i in range(args.n + 50):  # the first 50 of each are warm-up
                req = requests[i % len(requests)]
                names = list(variants)
                names = names[i % 3 :] + names[: i % 3]  # each goes first as often
                for name in names:
                    c = variants[name]
                    t0 = time.perf_counter()
                    cyc = c.start(req)
                    c.complete(cyc)
                    took = (time.perf_counter() - t0) * 1e3
                    c.finish(cyc)
                    if i >= 50:
                        ms[name].append(took)
            print(f"\n{kind} (start + complete, ms; {load_line('now')})")
            base = ms["no outbox (baseline)"]
            for name, xs in ms.items():
                print(f"  {name:<22} {pcts(xs, 3)}")
                d50 = percentile(xs, 50) - percentile(base, 50)
                d99 = percentile(xs, 99) - percentile(base, 99)
                ratio = percentile(xs, 50) / percentile(base, 50)
                rows.append((kind, name, f"{d50:+.3f}", f"{d99:+.3f}", f"{ratio:.2f}x"))
    finally:
        for c in variants.values():
            c.close()
        peers.close()
        session.close()  # type: ignore[no-untyped-call]
    print()
    print(table(["cycle", "variant", "p50 - baseline ms", "p99 - baseline ms", "p50 ratio"], rows))
    print(load_line("at end"))


if __name__ == "__main__":
    main()
