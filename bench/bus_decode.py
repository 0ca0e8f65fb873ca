"""Decoding a bus payload: pydantic's JSON parser straight to the model (what
``emily.bus.messages.decode`` does for valid bytes) against ``json.loads`` followed by
validation (the baseline, and the path invalid payloads still take), in the same run.

    .venv/bin/python bench/bus_decode.py [--dim 384] [--n 20000]
"""

from __future__ import annotations

import argparse
import json
import time

from common import load_line, table
from pydantic import Field

from emily.bus.messages import Message, decode, encode


class VectorQuery(Message):
    """A recall-shaped message: one embedding and a few scalars."""

    vector: list[float] = Field(min_length=1, max_length=4096)
    k: int = Field(ge=1, le=1000)
    text: str = ""


def per_call_us(fn: object, payload: bytes, n: int) -> float:
    """Mean wall time of ``fn(payload)`` over ``n`` calls, in microseconds."""
    call = fn  # type: ignore[assignment]
    t0 = time.perf_counter()
    for _ in range(n):
        call(payload)  # type: ignore[operator]
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--n", type=int, default=20000)
    args = ap.parse_args()
    print(load_line("at start"))
    vec = [((i * 7919) % 1000) / 1000.0 - 0.5 for i in range(args.dim)]
    payload = encode(VectorQuery(vector=vec, k=10, text="what did I eat"))

    def baseline(raw: bytes) -> VectorQuery:
        return VectorQuery.model_validate(json.loads(raw))

    def fast(raw: bytes) -> VectorQuery:
        return decode(VectorQuery, raw)

    assert fast(payload) == baseline(payload)
    for fn in (baseline, fast):  # warm up
        per_call_us(fn, payload, 200)
    base = per_call_us(baseline, payload, args.n)
    ours = per_call_us(fast, payload, args.n)
    print(f"payload: {len(payload)} bytes ({args.dim}-d vector), {args.n} decodes each")
    rows = [
        ("json.loads + model_validate (baseline)", f"{base:.1f}", "1.00x"),
        ("decode(): model_validate_json", f"{ours:.1f}", f"{base / ours:.2f}x"),
    ]
    print(table(("path", "us/decode", "speed-up"), rows))
    print(f"speed-up vs baseline: {base / ours:.2f}x")


if __name__ == "__main__":
    main()
