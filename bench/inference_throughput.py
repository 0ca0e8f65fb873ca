"""Inference throughput: the raw llama.cpp loop vs the service, and concurrent clients on
the parallel engine, the serial path and llama-cpp-python's own ``llama_cpp.server``.

Measured in one run, with the same prompt and settings everywhere (greedy, fixed length:
end-of-generation tokens are banned with a logit bias every server accepts):

1. single requests: raw ``llama_cpp.Llama.generate`` token by token with detokenizing
   (the baseline every ratio is taken against), the service over Zenoh
   (``inference/generate``) and over HTTP (``/v1/completions``, SSE), and the time to
   first token of a short prompt on each (``--ttft-reps``);
2. concurrency: 1, 2, 4 and 8 HTTP clients, each sending requests back to back
   (non-streamed, so every server reports the tokens it really generated), against
   (a) the parallel engine (``slots`` sequences decoded together in one context),
   (b) the serial path (the same service with one slot) and (c) ``llama_cpp.server``
   (a subprocess on the same model and threads). Aggregate generated tokens/s and
   p50/p99 request latency; the ratio is to the serial path at the same client count;
3. what the batch itself gives: the parallel engine's decode step alone with 1, 2, 4
   and 8 sequences generating together (no prompts, no HTTP), ratio to one sequence.

Prompt processing (pp) tokens/s is prompt tokens / time to first token; generation (tg)
tokens/s is (tokens - 1) / (time of last token - time of first token).

Usage::

    .venv/bin/python bench/inference_throughput.py [--threads N] [--n-gpu-layers -1]
        [--model PATH] [--tokens 64] [--reps 5] [--slots 8] [--per-client 2] [--plot]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import llama_cpp
from common import free_port, load_line, percentile, pyplot, save_plot, table

from emily.bus import BusConfig, open_session
from emily.bus.endpoints import GENERATE
from emily.bus.rpc import stream, wait_for_server
from emily.bus.schemas.inference import FinishReason, GenerateRequest, GenerationChunk
from emily.inference.config import InferenceConfig
from emily.inference.decoder import Decoder
from emily.inference.engine import Plan
from emily.inference.http_api import create_app
from emily.inference.metrics import InferenceMetrics
from emily.inference.sampler import TokenLogprob
from emily.inference.scheduler import Scheduler
from emily.inference.service import InferenceService
from emily.inference.store import embedded_model
from emily.llamacpp import extra_buffers, loading_with
from emily.observe.http import HTTPServer

# the request's number comes first, so no server can reuse another request's prompt cache
PROMPT = (
    "Request {i}. The following is a detailed report on the history of the city of Lyon, "
    "its rivers, its silk industry, its food, its old town and its role in the Roman "
    "province of Gaul. "
    "It was written for visitors who want to understand why the city looks the way it does "
    "today, and it begins with the founding of Lugdunum in 43 BC."
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


def eog_tokens(llm: llama_cpp.Llama) -> list[int]:
    """Every end-of-generation token id (banned so that each request makes n tokens)."""
    vocab = llm._model.vocab
    n = llama_cpp.llama_vocab_n_tokens(vocab)
    return [t for t in range(n) if llama_cpp.llama_vocab_is_eog(vocab, t)]


def raw_tokens(llm: llama_cpp.Llama, prompt: str, n: int, bias: dict[int, float]) -> Run:
    """The minimal baseline: ``Llama.generate`` token by token, each detokenized."""
    llm.reset()
    t0 = time.perf_counter()
    tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
    first = last = 0.0
    count = 0
    for token in llm.generate(tokens, temp=0, repeat_penalty=1.0):
        if token in bias:
            break
        llm.detokenize([token])
        now = time.perf_counter() - t0
        first = first or now
        last = now
        count += 1
        if count == n:
            break
    return Run(len(tokens), count, first, last)


def over_zenoh(session: Any, key: str, prompt: str, n: int) -> Run:
    """One streamed request over Zenoh."""
    req = GenerateRequest(
        prompt=prompt, max_tokens=n, temperature=0, repeat_penalty=1.0, ignore_eos=True, stream=True
    )
    t0 = time.perf_counter()
    first = last = 0.0
    final = None
    for c in stream(session, key, req, GenerationChunk, timeout_s=600):
        now = time.perf_counter() - t0
        if c.done:
            final = c
        else:
            first = first or now
            last = now
    assert final is not None and final.usage is not None
    return Run(final.usage.prompt_tokens, final.usage.completion_tokens, first, last)


def completion_body(prompt: str, n: int, bias: dict[int, float], *, stream: bool) -> str:
    """The JSON body of a ``/v1/completions`` request, the same for every server: ``n``
    tokens at temperature 0 under the logit bias ``bias``, streamed or not."""
    return json.dumps(
        {
            "prompt": prompt,
            "max_tokens": n,
            "temperature": 0,
            "repeat_penalty": 1.0,
            "logit_bias": {str(t): v for t, v in bias.items()},
        }
        | ({"stream": True} if stream else {})
    )


def over_http(port: int, prompt: str, n: int, bias: dict[int, float]) -> Run:
    """One streamed ``/v1/completions`` request (the same body for every server)."""
    body = completion_body(prompt, n, bias, stream=True)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    first = last = 0.0
    for raw_line in resp:
        line = raw_line.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        event = json.loads(line[6:])
        if event.get("choices") and event["choices"][0].get("text"):
            now = time.perf_counter() - t0
            first = first or now
            last = now
    conn.close()
    return Run(0, n, first, last)


def whole_http(port: int, prompt: str, n: int, bias: dict[int, float]) -> int:
    """One non-streamed ``/v1/completions`` request; returns the tokens it generated."""
    body = completion_body(prompt, n, bias, stream=False)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = json.loads(resp.read())
    conn.close()
    assert resp.status == 200, data
    return int(data["usage"]["completion_tokens"])


def summary(runs: list[Run]) -> tuple[float, float, float, float]:
    """Medians: pp tokens/s, tg tokens/s, TTFT in ms, end-to-end tokens/s."""
    return (
        statistics.median(r.pp for r in runs),
        statistics.median(r.tg for r in runs),
        statistics.median(r.ttft for r in runs) * 1e3,
        statistics.median(r.tokens / r.last for r in runs),
    )


def concurrency(
    port: int, clients: int, per_client: int, n: int, bias: dict[int, float]
) -> tuple[float, float, float]:
    """Aggregate generated tokens/s, p50 and p99 latency (s) with ``clients`` in parallel."""
    latencies: list[float] = []
    tokens = [0]
    lock = threading.Lock()

    def client(c: int) -> None:
        for j in range(per_client):
            t0 = time.perf_counter()
            made = whole_http(port, PROMPT.format(i=f"{clients}-{c}-{j}"), n, bias)
            with lock:
                latencies.append(time.perf_counter() - t0)
                tokens[0] += made  # as the server counted them

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return tokens[0] / wall, percentile(latencies, 50), percentile(latencies, 99)


class _Endless:
    """A request that never ends by itself (the step timing stops it)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def should_stop(self) -> FinishReason | None:
        return None

    def emit(self, text: str, logprobs: tuple[TokenLogprob, ...]) -> None:
        pass


def step_ms(svc: InferenceService, cfg: InferenceConfig, sequences: int, steps: int = 20) -> float:
    """Median time of one decode step with ``sequences`` generating together, in ms."""
    decoder = Decoder(svc.engine, replace(cfg, slots=sequences, prefix_cache=False))
    try:
        req = GenerateRequest(prompt="x", max_tokens=steps + 8, temperature=0, ignore_eos=True)
        for i in range(sequences):
            decoder.admit(_Endless(svc.engine.plan(f"Sequence {i} says", req)))
        for _ in range(3):  # prompts, then generation only
            decoder.step()
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            decoder.step()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e3
    finally:
        decoder.cancel_all("cancelled")
        decoder.close()


def start_llama_cpp_server(model: Path, cfg: InferenceConfig, port: int) -> subprocess.Popen[bytes]:
    """``python -m llama_cpp.server`` on the same model, context and threads."""
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", str(cfg.n_ctx), "--n_threads", str(cfg.threads),
        "--n_threads_batch", str(cfg.threads_batch), "--n_gpu_layers", str(cfg.n_gpu_layers),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v1/models")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not start; pip install 'llama-cpp-python[server]'")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="GGUF (default: embedded 270M)")
    ap.add_argument("--threads", type=int, default=0, help="0: every core (the default)")
    ap.add_argument("--n-gpu-layers", type=int, default=0)
    ap.add_argument("--tokens", type=int, default=64, help="tokens generated per request")
    ap.add_argument("--reps", type=int, default=5, help="single requests per path")
    ap.add_argument("--slots", type=int, default=8, help="slots of the parallel engine")
    ap.add_argument("--per-client", type=int, default=2, help="requests per concurrent client")
    ap.add_argument("--clients", default="1,2,4,8")
    ap.add_argument("--ttft-reps", type=int, default=30, help="short requests per path")
    ap.add_argument("--no-llama-server", action="store_true", help="skip llama_cpp.server")
    ap.add_argument("--plot", action="store_true", help="write bench/out/inference_throughput.png")
    args = ap.parse_args()

    model = args.model or embedded_model()  # assembled once into <state dir>/models
    cfg = InferenceConfig(
        model_path=model,
        n_threads=args.threads,
        n_gpu_layers=args.n_gpu_layers,
        n_ctx=1024,
        slots=args.slots,
        queue_size=16,
        queue_timeout_s=600,
        request_timeout_s=600,
        http_port=free_port(),
    )
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    svc = InferenceService(cfg, BusConfig(node="bench", listen=(endpoint,), connect=()))
    session = open_session(BusConfig(node="bench", connect=(endpoint,)))
    serial_cfg = replace(cfg, slots=1)
    serial = Scheduler(svc.engine, serial_cfg, InferenceMetrics())
    serial_port = free_port()
    serial_http = HTTPServer(
        create_app(svc.engine, serial, InferenceMetrics(), api_key=None), "127.0.0.1", serial_port
    )
    with loading_with(extra_buffers(cfg.cpu_amx)):  # the engine's buffers
        llm = llama_cpp.Llama(
            model_path=str(model),
            n_ctx=cfg.n_ctx,
            n_threads=cfg.threads,
            n_threads_batch=cfg.threads_batch,
            n_gpu_layers=cfg.n_gpu_layers,
            verbose=False,
        )
    server = None
    try:
        assert serial_http.wait_started()
        if not args.no_llama_server:
            server_port = free_port()
            server = (start_llama_cpp_server(model, cfg, server_port), server_port)
        return measure(args, cfg, svc, session, llm, serial_port, server)
    finally:  # an open Zenoh session keeps the interpreter from exiting
        if server is not None:
            server[0].terminate()
            server[0].wait()
        serial_http.close()
        serial.close()
        session.close()
        svc.close()


def measure(
    args: argparse.Namespace,
    cfg: InferenceConfig,
    svc: InferenceService,
    session: Any,
    llm: llama_cpp.Llama,
    serial_port: int,
    server: tuple[subprocess.Popen[bytes], int] | None,
) -> int:
    """Run every measurement and print the tables; returns the exit code."""
    key = GENERATE.key(BusConfig(node="bench").keys)
    assert wait_for_server(session, key, timeout_s=10)
    bias = {t: -100.0 for t in eog_tokens(llm)}
    print(
        f"model {svc.engine.name}; backend {svc.engine.backend.describe()}; "
        f"threads {cfg.threads}; {args.tokens} tokens/request; {args.reps} reps; "
        f"{os.cpu_count()} CPUs"
    )
    print(load_line("at the start"))

    # warm-up, then interleave the paths so drifting machine load hits them alike
    raw_tokens(llm, PROMPT.format(i="w"), 8, bias)
    over_zenoh(session, key, PROMPT.format(i="w"), 8)
    over_http(cfg.http_port, PROMPT.format(i="w"), 8, bias)
    results: dict[str, list[Run]] = {"raw generate": [], "service/zenoh": [], "service/http": []}
    for i in range(args.reps):
        p = PROMPT.format(i=i)
        results["raw generate"].append(raw_tokens(llm, p, args.tokens, bias))
        results["service/zenoh"].append(over_zenoh(session, key, p, args.tokens))
        results["service/http"].append(over_http(cfg.http_port, p, args.tokens, bias))
    for name, runs in results.items():
        assert all(r.tokens == args.tokens for r in runs), f"{name}: wrong token count"

    base = summary(results["raw generate"])
    single = {}
    rows: list[list[object]] = []
    for name, runs in results.items():
        _, tg, ttft, e2e = summary(runs)
        single[name] = (tg, ttft, e2e)
        rows.append([name, f"{tg:.1f}", f"{e2e:.1f}", f"{ttft:.1f}", f"{tg / base[1]:.3f}"])
    print()
    print(table(["path", "tg tok/s", "e2e tok/s", "TTFT ms", "tg ratio"], rows))

    print(f"\nTTFT overhead, short prompt and 1 token, median of {args.ttft_reps}")
    short: dict[str, list[float]] = {"raw generate": [], "service/zenoh": [], "service/http": []}
    for i in range(args.ttft_reps):
        p = f"Hi {i}"
        short["raw generate"].append(raw_tokens(llm, p, 1, bias).ttft)
        short["service/zenoh"].append(over_zenoh(session, key, p, 1).ttft)
        short["service/http"].append(over_http(cfg.http_port, p, 1, bias).ttft)
    base_ms = statistics.median(short["raw generate"]) * 1e3
    rows = []
    for name, ttfts in short.items():
        ms = statistics.median(ttfts) * 1e3
        rows.append([name, f"{ms:.2f}", f"{ms - base_ms:+.2f}"])
    print(table(["path", "TTFT ms", "+ms"], rows))

    print("\ndecode steps of the parallel engine alone (no HTTP, no prompts): median of 20")
    one = 0.0
    rows = []
    for c in (int(x) for x in args.clients.split(",")):
        ms = step_ms(svc, cfg, c)
        one = one or c / ms
        rows.append([c, f"{ms:.1f}", f"{c / ms * 1e3:.1f}", f"{c / ms / one:.2f}"])
    print(table(["sequences", "ms/step", "tok/s", "ratio"], rows))

    targets = {"parallel": cfg.http_port, "serial": serial_port}
    if server is not None:
        targets["llama_cpp.server"] = server[1]
        over_http(server[1], PROMPT.format(i="w"), 8, bias)
    print(
        f"\nconcurrent HTTP clients, {args.per_client} requests each; parallel engine has "
        f"{cfg.slots} slots; ratio is to the serial path at the same client count"
    )
    scaling: dict[str, list[tuple[int, float, float, float]]] = {t: [] for t in targets}
    rows = []
    for c in (int(x) for x in args.clients.split(",")):
        level = {
            name: concurrency(port, c, args.per_client, args.tokens, bias)
            for name, port in targets.items()
        }
        for name, (tput, p50, p99) in level.items():
            scaling[name].append((c, tput, p50, p99))
            ratio = tput / level["serial"][0]
            rows.append([c, name, f"{tput:.1f}", f"{ratio:.2f}", f"{p50:.2f}", f"{p99:.2f}"])
    print(table(["clients", "server", "tok/s", "ratio", "p50 s", "p99 s"], rows))
    print(load_line("at the end"))

    if args.plot:
        plt = pyplot()
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
        a.bar(list(single), [v[0] for v in single.values()])
        a.set_ylabel("generation tokens/s (one request)")
        a.set_title(f"{svc.engine.name}, {svc.engine.backend.backend}")
        for name, rows in scaling.items():
            b.plot([r[0] for r in rows], [r[1] for r in rows], "o-", label=name)
        b.set_xlabel("concurrent clients")
        b.set_ylabel("aggregate tokens/s")
        b.set_ylim(bottom=0)
        b.legend()
        fig.tight_layout()
        save_plot(fig, "inference_throughput.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
