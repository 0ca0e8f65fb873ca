"""The pure Nix helpers (modules/lib/{bdp,arc,cuda}.nix) against independent Python
implementations, over many generated inputs evaluated in one ``nix-instantiate`` call."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.nix.nixeval import nix_eval

MIB = 1 << 20


def next_pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def buffer_bytes(mbit: int, rtt_ms: int) -> int:
    """Bandwidth-delay product in bytes, up to a power of two, at least 4 MiB."""
    bdp = mbit * 1_000_000 * rtt_ms // (8 * 1000)
    return max(4 * MIB, next_pow2(bdp))


def nix_list(expr: str, inputs: list[list[int]]) -> list[object]:
    payload = json.dumps(json.dumps(inputs))
    got = nix_eval(f"map ({expr}) (builtins.fromJSON {payload})")
    assert isinstance(got, list)
    return got


@settings(max_examples=5, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 400_000), st.integers(1, 2_000)), min_size=1, max_size=60))
def test_bdp_buffer_matches_python(cases: list[tuple[int, int]]) -> None:
    got = nix_list(
        "c: (import ./modules/lib/bdp.nix).bufferBytes (builtins.elemAt c 0) (builtins.elemAt c 1)",
        [list(c) for c in cases],
    )
    assert got == [buffer_bytes(m, r) for m, r in cases]


@settings(max_examples=5, deadline=None)
@given(st.lists(st.integers(1, 4096), min_size=1, max_size=60))
def test_arc_limits_match_python(rams: list[int]) -> None:
    got = nix_list(
        "c: (import ./modules/lib/arc.nix).limits (builtins.head c)", [[r] for r in rams]
    )
    assert got == [
        {"maxBytes": r * 1024 * 25 // 32 * MIB, "minBytes": r * 1024 // 16 * MIB} for r in rams
    ]
    for limits in got:
        assert isinstance(limits, dict)
        assert 0 < limits["minBytes"] < limits["maxBytes"]


@settings(max_examples=5, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["11.8", "12.6", "12.9", "13.0", "13.4"]),
            st.lists(
                st.sampled_from(["3.7", "5.0", "6.0", "6.1", "7.0", "7.5", "8.6", "9.0", "10.0"]),
                max_size=4,
            ),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_cuda_support_matches_python(cases: list[tuple[str, list[str]]]) -> None:
    got = nix_eval(
        "map (c: (import ./modules/lib/cuda.nix).unsupported c.v c.caps) (builtins.fromJSON "
        + json.dumps(json.dumps([{"v": v, "caps": caps} for v, caps in cases]))
        + ")"
    )

    def key(cap: str) -> tuple[int, ...]:
        return tuple(int(x) for x in cap.split("."))

    def oldest(version: str) -> tuple[int, ...]:
        major = int(version.split(".")[0])
        return (7, 5) if major >= 13 else (5, 0) if major == 12 else (3, 5)

    want = [[c for c in caps if key(c) < oldest(v)] for v, caps in cases]
    assert got == want
