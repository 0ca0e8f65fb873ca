"""Inference throughput: raw llama.cpp vs the service over Zenoh and HTTP, and concurrency.

Measured in one run, on one loaded model (the service's own engine), with the same
prompt and settings everywhere (greedy, fixed length: end-of-sequence is suppressed):

1. raw ``llama_cpp.Llama.generate``, token by token with detokenizing: the baseline
   every ratio is taken against ("raw generate"); and, for reference, llama-cpp-python's
   own ``create_completion(stream=True)`` ("raw completion"), which re-detokenizes the
   whole output per token and applies the end-of-sequence ban as a Python logit bias;
2. the service over Zenoh (``inference/generate``, one reply per chunk), client in this
   process on a loopback TCP session;
3. the service over HTTP (``/v1/completions``, SSE), read with ``http.client``;
4. concurrency: 1, 2, 4 and 8 Zenoh clients, each sending requests back to back:
   aggregate throughput and p50/p99 latency. One model instance serves one request at a
   time, so throughput should stay flat and latency grow with the queue.

Prompt processing (pp) tokens/s is prompt tokens / time to first token; generation (tg)
tokens/s is (tokens - 1) / (time of last token - time of first token).

Usage::

    .venv/bin/python bench/inference_throughput.py [--threads N] [--n-gpu-layers -1]
        [--model PATH] [--tokens 64] [--reps 5] [--plot]
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from emily.bus import BusConfig, open_session
from emily.bus.endpoints import GENERATE
from emily.bus.rpc import stream, wait_for_server
from emily.bus.schemas.inference import GenerateRequest, GenerationChunk
from emily.inference.config import InferenceConfig
from emily.inference.service import InferenceService
from emily.inference.store import embedded_model

PROMPT = (
    "The following is a detailed report on the history of the city of Lyon, its rivers, "
    "its silk industry, its food, its old town and its role in the Roman province of Gaul. "
    "It was written for visitors who want to understand why the city looks the way it does "
    "today, and it begins with the founding of Lugdunum in 43 BC. Request {i}:"
)


@dataclass
class Run:
    """One request: prompt tokens, generated tokens, and times in s from the send."""

    prompt_tokens: int
    tokens: int
    ttft: float
    last: float

    @property
    def tg(self) -> float:
        """Generation speed, tokens/s."""
        return (self.tokens - 1) / (self.last - self.ttft) if self.last > self.ttft else 0.0

    @property
    def pp(self) -> float:
        """Prompt processing speed, tokens/s (includes request overhead)."""
        return self.prompt_tokens / self.ttft


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def eog_bias(llm: llama_cpp.Llama) -> dict[int, float]:
    """Logit bias that bans every end-of-generation token (raw baseline's ignore_eos)."""
    vocab = llm._model.vocab
    n = llama_cpp.llama_vocab_n_tokens(vocab)
    return {t: -1e9 for t in range(n) if llama_cpp.llama_vocab_is_eog(vocab, t)}


def raw_tokens(svc: InferenceService, prompt: str, n: int) -> Run:
    """The minimal baseline: ``Llama.generate`` token by token, each detokenized."""
    llm = svc.engine.llm
    with svc.engine.lock:
        llm.reset()
        t0 = time.perf_counter()
        tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
        first = last = 0.0
        count = 0
        for token in llm.generate(tokens, temp=0, repeat_penalty=1.0):
            llm.detokenize([token])
            now = time.perf_counter() - t0
            first = first or now
            last = now
            count += 1
            if count == n:
                break
    return Run(len(tokens), count, first, last)


def raw(svc: InferenceService, prompt: str, n: int, bias: dict[int, float]) -> Run:
    """llama-cpp-python's streaming completion API on the same engine (for reference)."""
    llm = svc.engine.llm
    with svc.engine.lock:
        llm.reset()
        t0 = time.perf_counter()
        first = last = 0.0
        finish = None
        usage_prompt = len(llm.tokenize(prompt.encode(), add_bos=True, special=True))
        for chunk in llm.create_completion(
            prompt,
            max_tokens=n,
            temperature=0,
            repeat_penalty=1.0,
            stream=True,
            logit_bias=bias,
        ):
            now = time.perf_counter() - t0
            choice = chunk["choices"][0]  # type: ignore[index]
            if choice["text"]:
                first = first or now
                last = now
            finish = choice["finish_reason"] or finish
    # end-of-generation is banned, so a run that ends on "length" made exactly n tokens
    count = n if finish == "length" else -1
    return Run(usage_prompt, count, first, last)


def over_zenoh(session: object, key: str, prompt: str, n: int) -> Run:
    """One streamed request over Zenoh."""
    req = GenerateRequest(
        prompt=prompt,
        max_tokens=n,
        temperature=0,
        repeat_penalty=1.0,
        ignore_eos=True,
        stream=True,
    )
    t0 = time.perf_counter()
    first = last = 0.0
    final = None
    for c in stream(session, key, req, GenerationChunk, timeout_s=600):  # type: ignore[arg-type]
        now = time.perf_counter() - t0
        if c.done:
            final = c
        else:
            first = first or now
            last = now
    assert final is not None and final.usage is not None
    return Run(final.usage.prompt_tokens, final.usage.completion_tokens, first, last)


def over_http(port: int, prompt: str, n: int) -> Run:
    """One streamed request over HTTP SSE."""
    body = json.dumps(
        {
            "prompt": prompt,
            "max_tokens": n,
            "temperature": 0,
            "repeat_penalty": 1.0,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    first = last = 0.0
    usage = None
    for raw_line in resp:
        line = raw_line.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        event = json.loads(line[6:])
        now = time.perf_counter() - t0
        if event.get("usage"):
            usage = event["usage"]
        elif event["choices"] and event["choices"][0]["text"]:
            first = first or now
            last = now
    conn.close()
    assert usage is not None
    return Run(usage["prompt_tokens"], usage["completion_tokens"], first, last)


def summary(runs: list[Run]) -> tuple[float, float, float, float]:
    """Medians: pp tokens/s, tg tokens/s, TTFT in ms, end-to-end tokens/s."""
    return (
        statistics.median(r.pp for r in runs),
        statistics.median(r.tg for r in runs),
        statistics.median(r.ttft for r in runs) * 1e3,
        statistics.median(r.tokens / r.last for r in runs),
    )


def concurrency(
    session: object, key: str, clients: int, per_client: int, n: int
) -> tuple[float, float, float]:
    """Aggregate generated tokens/s, p50 and p99 latency (s) with ``clients`` in parallel."""
    latencies: list[float] = []
    tokens = [0]
    lock = threading.Lock()

    def client(c: int) -> None:
        for j in range(per_client):
            t0 = time.perf_counter()
            run = over_zenoh(session, key, PROMPT.format(i=f"{clients}-{c}-{j}"), n)
            with lock:
                latencies.append(time.perf_counter() - t0)
                tokens[0] += run.tokens

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    p50, p99 = np.percentile(latencies, [50, 99])
    return tokens[0] / wall, float(p50), float(p99)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="GGUF (default: embedded 270M)")
    ap.add_argument("--threads", type=int, default=0, help="0: every core (the default)")
    ap.add_argument("--n-gpu-layers", type=int, default=0)
    ap.add_argument("--tokens", type=int, default=64, help="tokens generated per request")
    ap.add_argument("--reps", type=int, default=5, help="requests per path")
    ap.add_argument("--per-client", type=int, default=2, help="requests per concurrent client")
    ap.add_argument("--clients", default="1,2,4,8")
    ap.add_argument("--ttft-reps", type=int, default=30, help="short requests per path")
    ap.add_argument("--plot", action="store_true", help="write bench/out/inference_throughput.png")
    args = ap.parse_args()

    model = args.model or embedded_model()  # assembled once into <state dir>/models
    cfg = InferenceConfig(
        model_path=model,
        n_threads=args.threads,
        n_gpu_layers=args.n_gpu_layers,
        n_ctx=1024,
        queue_size=16,
        queue_timeout_s=600,
        request_timeout_s=600,
        http_port=free_port(),
    )
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    svc = InferenceService(cfg, BusConfig(node="bench", listen=(endpoint,), connect=()))
    session = open_session(BusConfig(node="bench", connect=(endpoint,)))
    try:
        return measure(args, cfg, svc, session)
    finally:  # an open Zenoh session keeps the interpreter from exiting
        session.close()
        svc.close()


def measure(
    args: argparse.Namespace, cfg: InferenceConfig, svc: InferenceService, session: Any
) -> int:
    """Run every measurement and print the tables; returns the exit code."""
    key = GENERATE.key(BusConfig(node="bench").keys)
    assert wait_for_server(session, key, timeout_s=10)
    bias = eog_bias(svc.engine.llm)
    print(
        f"model {svc.engine.name}; backend {svc.engine.backend.describe()}; "
        f"threads {cfg.threads}; {args.tokens} tokens/request; {args.reps} reps"
    )

    # warm-up, then interleave the three paths so drifting machine load hits them alike
    raw_tokens(svc, PROMPT.format(i="w"), 8)
    raw(svc, PROMPT.format(i="w"), 8, bias)
    over_zenoh(session, key, PROMPT.format(i="w"), 8)
    over_http(cfg.http_port, PROMPT.format(i="w"), 8)
    results: dict[str, list[Run]] = {
        "raw generate": [],
        "raw completion": [],
        "service/zenoh": [],
        "service/http": [],
    }
    for i in range(args.reps):
        p = PROMPT.format(i=i)
        results["raw generate"].append(raw_tokens(svc, p, args.tokens))
        results["raw completion"].append(raw(svc, p, args.tokens, bias))
        results["service/zenoh"].append(over_zenoh(session, key, p, args.tokens))
        results["service/http"].append(over_http(cfg.http_port, p, args.tokens))
    for name, runs in results.items():
        assert all(r.tokens == args.tokens for r in runs), f"{name}: wrong token count"

    base = summary(results["raw generate"])
    print(
        f"\n{'path':<16}{'pp tok/s':>10}{'tg tok/s':>10}{'e2e tok/s':>10}{'TTFT ms':>10}"
        f"{'tg ratio':>10}{'e2e ratio':>10}{'TTFT +ms':>10}"
    )
    table = {}
    for name, runs in results.items():
        pp, tg, ttft, e2e = summary(runs)
        table[name] = (pp, tg, ttft, e2e)
        print(
            f"{name:<16}{pp:>10.1f}{tg:>10.1f}{e2e:>10.1f}{ttft:>10.1f}"
            f"{tg / base[1]:>10.3f}{e2e / base[3]:>10.3f}{ttft - base[2]:>+10.2f}"
        )

    print(f"\nTTFT overhead, short prompt and 1 token, median of {args.ttft_reps}")
    short: dict[str, list[float]] = {"raw generate": [], "service/zenoh": [], "service/http": []}
    for i in range(args.ttft_reps):
        p = f"Hi {i}"
        short["raw generate"].append(raw_tokens(svc, p, 1).ttft)
        short["service/zenoh"].append(over_zenoh(session, key, p, 1).ttft)
        short["service/http"].append(over_http(cfg.http_port, p, 1).ttft)
    base_ms = statistics.median(short["raw generate"]) * 1e3
    print(f"{'path':<16}{'TTFT ms':>10}{'+ms':>10}")
    for name, ttfts in short.items():
        ms = statistics.median(ttfts) * 1e3
        print(f"{name:<16}{ms:>10.2f}{ms - base_ms:>+10.2f}")

    print(f"\nconcurrency over Zenoh ({args.per_client} requests per client); ratio is to")
    print("raw generate end-to-end tokens/s measured just before each level (load drifts)")
    print(f"{'clients':>8}{'tok/s':>10}{'raw tok/s':>10}{'ratio':>8}{'p50 s':>8}{'p99 s':>8}")
    scaling = []
    for c in (int(x) for x in args.clients.split(",")):
        before = [raw_tokens(svc, PROMPT.format(i=f"r{c}-{j}"), args.tokens) for j in range(2)]
        raw_e2e = statistics.median(r.tokens / r.last for r in before)
        tput, p50, p99 = concurrency(session, key, c, args.per_client, args.tokens)
        scaling.append((c, tput, p50, p99))
        print(f"{c:>8}{tput:>10.1f}{raw_e2e:>10.1f}{tput / raw_e2e:>8.2f}{p50:>8.2f}{p99:>8.2f}")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = Path(__file__).resolve().parent / "out"
        out.mkdir(exist_ok=True)
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
        a.bar(list(table), [v[1] for v in table.values()])
        a.set_ylabel("generation tokens/s")
        a.tick_params(axis="x", labelrotation=15)
        a.set_title(f"{svc.engine.name}, {svc.engine.backend.backend}")
        b.plot([s[0] for s in scaling], [s[1] for s in scaling], "o-", label="tokens/s")
        b.set_xlabel("concurrent clients")
        b.set_ylabel("aggregate tokens/s")
        b.set_ylim(bottom=0)
        b2 = b.twinx()
        b2.plot([s[0] for s in scaling], [s[3] for s in scaling], "s--r", label="p99 s")
        b2.set_ylabel("p99 latency, s")
        fig.tight_layout()
        fig.savefig(out / "inference_throughput.png", dpi=120)
        print(f"\nplot: {out / 'inference_throughput.png'}")

    return 0


if __name__ == "__main__":
    sys.exit(main())
