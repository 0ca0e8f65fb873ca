"""The sysctls modules/network sets: every key exists in this kernel's /proc/sys, and the
socket buffers follow the bandwidth-delay product."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.nix.nixeval import nix_eval

PROC = Path("/proc/sys")


def sysctls(mbit: int = 1000, rtt_ms: int = 100) -> dict[str, object]:
    got = nix_eval(f"import ./modules/network/sysctl.nix {{ mbit = {mbit}; rttMs = {rtt_ms}; }}")
    assert isinstance(got, dict)
    return got


def proc_path(key: str) -> Path:
    return PROC / key.replace(".", "/")


@pytest.mark.parametrize("key", sorted(sysctls()))
def test_key_exists_in_this_kernel(key: str) -> None:
    assert proc_path(key).exists(), f"{key} is not a sysctl of this kernel ({proc_path(key)})"


def test_a_made_up_key_would_be_caught() -> None:
    assert not proc_path("net.ipv4.tcp_congestion_control_v2").exists()


def test_bbr_fq_and_forwarding() -> None:
    s = sysctls()
    assert s["net.ipv4.tcp_congestion_control"] == "bbr"
    assert s["net.core.default_qdisc"] == "fq"
    assert s["net.ipv4.conf.all.forwarding"] == 1
    assert s["net.ipv6.conf.all.forwarding"] == 1


# nixpkgs' sysctl module declares these two `null or unsigned integer`: a string there
# fails evaluation of the whole system. The other keys are free-form.
TYPED_INTS = ("net.core.rmem_max", "net.core.wmem_max")


def test_typed_keys_are_unsigned_integers() -> None:
    s = sysctls()
    for key in TYPED_INTS:
        value = s[key]
        assert isinstance(value, int) and not isinstance(value, bool), (key, value)
        assert value >= 0
    for key in ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"):
        assert isinstance(s[key], str), key


@pytest.mark.parametrize(
    ("mbit", "rtt", "size"),
    [(1000, 100, 16 << 20), (10000, 100, 128 << 20), (1000, 10, 4 << 20), (100, 200, 4 << 20)],
)
def test_buffers_from_bdp(mbit: int, rtt: int, size: int) -> None:
    s = sysctls(mbit, rtt)
    # the BDP in bytes, rounded up to a power of two, floored at 4 MiB
    bdp = mbit * 1_000_000 // 8 * rtt // 1000
    assert size >= bdp and (size == 4 << 20 or size // 2 < bdp)
    assert s["net.core.rmem_max"] == size and s["net.core.wmem_max"] == size
    assert s["net.ipv4.tcp_rmem"] == f"4096 131072 {size}"
    assert s["net.ipv4.tcp_wmem"] == f"4096 16384 {size}"
    # the kernel's triple format: three integers, min <= default <= max
    for key in ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"):
        lo, default, hi = (int(x) for x in str(s[key]).split())
        assert lo <= default <= hi
