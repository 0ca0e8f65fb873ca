"""Reflex tier: features (hashed n-grams vs MiniLM) and decision latency.

1. **Features.** Trains the spiking reflex on each feature kind (same data, same seed)
   and prints held-out accuracy, precision, recall and false-fire rate on out-of-scope
   utterances, with the per-decision latency including feature extraction.
2. **In-process latency** of the fast (n-gram) reflex decision: p50/p95/p99 over
   ``--n`` decisions (10,000 by default) on the data set's utterances, cycled.
3. **Over Zenoh on loopback**: ``cognition/observe`` round trips for utterances the
   reflex answers (``--n`` of them), against a same-run baseline of a bare Zenoh
   get/reply echo on the same sessions.

Timings on a shared machine are noisy; the ratios to same-run baselines are what to
compare across machines.

    .venv/bin/python bench/cognition_reflex.py [--n 10000] [--plot]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from emily.bus import BusConfig, Keys, open_session
from emily.bus.messages import Message
from emily.bus.rpc import Server, call, wait_for_server
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from emily.cognition.config import CognitionConfig
from emily.cognition.reflex import MiniLMFeatures, Reflex, ReflexModel
from emily.cognition.reflex import data as rdata
from emily.cognition.reflex.cascade import DEEP_CONFIG
from emily.cognition.reflex.features import HashedNgrams, torch_threads
from emily.cognition.service import CognitionService

OUT = Path(__file__).resolve().parent / "out"


def pct(ms: list[float]) -> str:
    a = np.asarray(ms)
    return (
        f"p50 {np.percentile(a, 50):7.3f}  p95 {np.percentile(a, 95):7.3f}  "
        f"p99 {np.percentile(a, 99):7.3f} ms  (n={a.size})"
    )


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Echo(Message):
    text: str


def features_table(fast: ReflexModel, deep: ReflexModel, embedder: MiniLMFeatures) -> None:
    rows = rdata.load_intents()
    texts = [r.text for r in rows if r.split == "heldout"]
    print("\n1. features (held-out split; latency includes feature extraction)")
    print(
        f"{'features':<10} {'accuracy':>8} {'precision':>9} {'recall':>7} {'false-fire':>10} "
        f"{'threshold':>9}   latency per decision"
    )
    lat: dict[str, list[float]] = {"ngrams": [], "minilm": []}
    for text in texts * 5:
        t0 = time.perf_counter()
        fast.decide(text)
        lat["ngrams"].append((time.perf_counter() - t0) * 1e3)
    for text in texts:
        t0 = time.perf_counter()
        deep.decide(text, features=embedder.from_embedding(embedder.embed([text])[0]))
        lat["minilm"].append((time.perf_counter() - t0) * 1e3)
    for name, model in (("ngrams", fast), ("minilm", deep)):
        s = model.evaluate(rows)
        print(
            f"{name:<10} {s.accuracy:>8.3f} {s.precision:>9.3f} {s.recall:>7.3f} "
            f"{s.false_fire:>10.3f} {s.threshold:>9.2f}   {pct(lat[name])}"
        )
    print(
        f"minilm/ngrams p50 latency ratio: "
        f"{np.percentile(lat['minilm'], 50) / np.percentile(lat['ngrams'], 50):.1f}x"
    )


def in_process(fast: ReflexModel, n: int) -> list[float]:
    texts = [r.text for r in rdata.load_intents()]
    ms = []
    for i in range(n):
        t0 = time.perf_counter()
        fast.decide(texts[i % len(texts)])
        ms.append((time.perf_counter() - t0) * 1e3)
    print("\n2. in-process reflex decision (n-gram features + spiking network, 8 steps)")
    print(f"   {pct(ms)}   target p99 <= 1 ms")
    return ms


def over_zenoh(reflex: Reflex, n: int) -> tuple[list[float], list[float]]:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    bus = BusConfig(node="bench", listen=(endpoint,), connect=())
    service = CognitionService(CognitionConfig(embeddings=False), bus, reflex, http=False)
    client = open_session(BusConfig(node="bench", listen=(), connect=(endpoint,)))
    keys = Keys("bench")
    echo = Server(service.session, keys.query("bench", "echo"), Echo, lambda r: r)
    observe_key = keys.query("cognition", "observe")
    assert wait_for_server(client, observe_key, timeout_s=10)
    assert wait_for_server(client, echo.key, timeout_s=10)
    fired = [
        r.text
        for r in rdata.load_intents()
        if r.intent != rdata.OOS and reflex.fast.decide(r.text).fired
    ]
    base, obs = [], []
    answered_by: Counter[str] = Counter()
    try:
        for i in range(n):
            t0 = time.perf_counter()
            call(client, echo.key, Echo(text=fired[i % len(fired)]), Echo, timeout_s=10)
            base.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            reply = call(
                client,
                observe_key,
                ObserveRequest(text=fired[i % len(fired)]),
                ObserveReply,
                timeout_s=10,
            )
            obs.append((time.perf_counter() - t0) * 1e3)
            answered_by[reply.trace.tier] += 1
    finally:
        echo.close()
        client.close()
        service.close()
    print(f"\n3. over Zenoh on loopback ({len(fired)} distinct utterances the reflex answers)")
    print(f"   answered by {dict(answered_by)} (allostasis and STDP move the threshold)")
    print(f"   zenoh echo baseline        {pct(base)}")
    print(f"   cognition/observe (reflex) {pct(obs)}   target p99 <= 2 ms")
    print(
        f"   ratio observe/echo: p50 {np.percentile(obs, 50) / np.percentile(base, 50):.2f}x"
        f"  p99 {np.percentile(obs, 99) / np.percentile(base, 99):.2f}x"
    )
    return base, obs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--plot", action="store_true")
    args = parser.parse_args()
    with torch_threads(1):
        cache = Path(tempfile.mkdtemp(prefix="reflex-bench-"))
        fast = ReflexModel.load_or_build(cache, features=HashedNgrams(), name="ngrams")
        embedder = MiniLMFeatures()
        deep = ReflexModel.load_or_build(cache, DEEP_CONFIG, embedder, "minilm")
        features_table(fast, deep, embedder)
        ms = in_process(fast, args.n)
        base, obs = over_zenoh(Reflex(fast), args.n)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for label, data in (("in-process", ms), ("zenoh echo", base), ("observe", obs)):
            ax.hist(np.clip(data, 0, 10), bins=100, histtype="step", label=label)
        ax.set_xlabel("latency (ms, clipped at 10)")
        ax.set_yscale("log")
        ax.legend()
        OUT.mkdir(exist_ok=True)
        fig.savefig(OUT / "cognition_reflex.png", dpi=120, bbox_inches="tight")
        print(f"plot: {OUT / 'cognition_reflex.png'}")


if __name__ == "__main__":
    main()
