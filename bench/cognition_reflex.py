"""Reflex tier: features (hashed n-grams vs MiniLM) and decision latency.

1. **Features.** Trains the spiking reflex on each feature kind (same data, same seed)
   and prints held-out accuracy, precision, recall and false-fire rate on out-of-scope
   utterances, with the per-decision latency including feature extraction.
2. **In-process latency** of the fast (n-gram) reflex decision: p50/p95/p99 over
   ``--n`` decisions (10,000 by default) on the data set's utterances, cycled.
3. **Over Zenoh on loopback**: ``cognition/observe`` round trips to ``emily serve
   cognition`` (its own process, as deployed) for utterances the reflex answers (``--n``
   of them), interleaved with a same-run baseline: a bare Zenoh get/reply echo served
   from another process's callback (``cognition_common.py echo``). Requests are
   encoded before the loop and replies validated after it (``cognition_common.py``).

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

from cognition_common import ECHO, bus_env, echo_cmd, process, raw_call, serve_cmd
from common import free_port, load, load_line, pcts, percentile, pyplot, save_plot, table

from emily.bus import BusConfig, Keys, open_session
from emily.bus.endpoints import OBSERVE
from emily.bus.messages import decode, encode
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from emily.cognition.reflex import MiniLMFeatures, ReflexModel
from emily.cognition.reflex import data as rdata
from emily.cognition.reflex.cascade import DEEP_CONFIG, FAST_CONFIG
from emily.cognition.reflex.features import HashedNgrams, torch_threads


def features_table(fast: ReflexModel, deep: ReflexModel, embedder: MiniLMFeatures) -> None:
    rows = rdata.load_intents()
    texts = [r.text for r in rows if r.split == "heldout"]
    lat: dict[str, list[float]] = {"ngrams": [], "minilm": []}
    for text in texts * 5:
        t0 = time.perf_counter()
        fast.decide(text)
        lat["ngrams"].append((time.perf_counter() - t0) * 1e3)
    for text in texts:
        t0 = time.perf_counter()
        deep.decide(text, features=embedder.from_embedding(embedder.embed([text])[0]))
        lat["minilm"].append((time.perf_counter() - t0) * 1e3)
    cells = []
    for name, model in (("ngrams", fast), ("minilm", deep)):
        s = model.evaluate(rows)
        cells.append(
            (
                name,
                f"{s.accuracy:.3f}",
                f"{s.precision:.3f}",
                f"{s.recall:.3f}",
                f"{s.false_fire:.3f}",
                f"{s.threshold:.2f}",
                pcts(lat[name]),
            )
        )
    header = ("features", "accuracy", "precision", "recall", "false-fire", "threshold")
    print("\n1. features (held-out split; latency includes feature extraction)")
    print(table((*header, "latency per decision"), cells))
    ratio = percentile(lat["minilm"], 50) / percentile(lat["ngrams"], 50)
    print(f"minilm/ngrams p50 latency ratio: {ratio:.1f}x")


def in_process(fast: ReflexModel, n: int) -> list[float]:
    texts = [r.text for r in rdata.load_intents()]
    ms = []
    for i in range(n):
        t0 = time.perf_counter()
        fast.decide(texts[i % len(texts)])
        ms.append((time.perf_counter() - t0) * 1e3)
    print("\n2. in-process reflex decision (n-gram features + spiking network, 8 steps)")
    print(f"   {pcts(ms)}   target p99 <= 1 ms")
    return ms


def over_zenoh(state: Path, fired: list[str], n: int) -> tuple[list[float], list[float]]:
    """Round trips to ``emily serve cognition`` and to the echo baseline, interleaved."""
    node, cog_ep, echo_ep = "bench", f"tcp/127.0.0.1:{free_port()}", f"tcp/127.0.0.1:{free_port()}"
    client = open_session(BusConfig(node=node, listen=(), connect=(cog_ep, echo_ep)))
    keys = Keys(node)
    observe_key, echo_key = OBSERVE.key(keys), keys.query(*ECHO.split("/"))
    env = bus_env(
        cog_ep,
        node,
        state,
        EMILY_COGNITION__EMBEDDINGS="false",
        EMILY_COGNITION__HTTP_PORT=str(free_port()),
    )
    payloads = [encode(ObserveRequest(text=t)) for t in fired]
    base, obs, raw = [], [], []
    try:
        with (
            process(serve_cmd("cognition"), env, client, observe_key),
            process(echo_cmd(echo_ep, node), bus_env(echo_ep, node, state), client, echo_key),
        ):
            for i in range(min(n, 500)):  # warm-up: imports, caches, connections
                raw_call(client, echo_key, payloads[i % len(fired)])
                raw_call(client, observe_key, payloads[i % len(fired)])
            print(f"   (load average {load()} before the timed loop)")
            for i in range(n):
                t0 = time.perf_counter()
                raw_call(client, echo_key, payloads[i % len(fired)])
                base.append((time.perf_counter() - t0) * 1e3)
                t0 = time.perf_counter()
                raw.append(raw_call(client, observe_key, payloads[i % len(fired)]))
                obs.append((time.perf_counter() - t0) * 1e3)
    finally:
        client.close()  # type: ignore[no-untyped-call]
    traces = [decode(ObserveReply, r).trace for r in raw]  # validated outside the timing
    tiers = [t.tier for t in traces]
    answered_by = Counter(tiers)
    print(f"\n3. over Zenoh on loopback ({len(fired)} distinct utterances the reflex answers;")
    print("   `emily serve cognition` and the echo each in their own process; load " + load() + ")")
    print(f"   answered by {dict(answered_by)} (allostasis and STDP move the threshold)")
    print(f"   zenoh echo baseline        {pcts(base)}")
    print(f"   cognition/observe (reflex) {pcts(obs)}   target p99 <= 2 ms")
    print(f"   its cycle total (service)  {pcts([t.latencies_ms['total'] for t in traces])}")
    for tier in sorted(answered_by):
        part = [o for o, t in zip(obs, tiers, strict=True) if t == tier]
        print(f"     answered by {tier:<8}     {pcts(part)}")
    print(
        f"   ratio observe/echo: p50 {percentile(obs, 50) / percentile(base, 50):.2f}x"
        f"  p99 {percentile(obs, 99) / percentile(base, 99):.2f}x"
    )
    return base, obs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--plot", action="store_true")
    args = parser.parse_args()
    print(load_line("at start"))
    state = Path(tempfile.mkdtemp(prefix="reflex-bench-"))
    cache = state / "cognition"  # where the service loads its reflex from
    with torch_threads(1):
        fast = ReflexModel.load_or_build(cache, FAST_CONFIG, HashedNgrams(), "ngrams")
        embedder = MiniLMFeatures()
        deep = ReflexModel.load_or_build(cache, DEEP_CONFIG, embedder, "minilm")
        features_table(fast, deep, embedder)
        ms = in_process(fast, args.n)
    fired = [
        r.text for r in rdata.load_intents() if r.intent != rdata.OOS and fast.decide(r.text).fired
    ]
    base, obs = over_zenoh(state, fired, args.n)
    if args.plot:
        fig, ax = pyplot().subplots(figsize=(6, 4))
        for label, data in (("in-process", ms), ("zenoh echo", base), ("observe", obs)):
            ax.hist(np.clip(data, 0, 10), bins=100, histtype="step", label=label)
        ax.set_xlabel("latency (ms, clipped at 10)")
        ax.set_yscale("log")
        ax.legend()
        save_plot(fig, "cognition_reflex.png")
    print(load_line("at end"))


if __name__ == "__main__":
    main()
