"""X25519 public keys from private keys (RFC 7748), to check WireGuard key pairs."""

from __future__ import annotations

import base64

P = 2**255 - 19
A24 = 121665


def x25519_base(private: bytes) -> bytes:
    """The public key (u-coordinate, 32 bytes) of a 32-byte X25519 private key.

    A plain Montgomery ladder over the base point u = 9, as in RFC 7748 section 5.
    """
    if len(private) != 32:
        raise ValueError(f"an X25519 private key has 32 bytes, got {len(private)}")
    k = bytearray(private)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    scalar = int.from_bytes(k, "little")
    x1, x2, z2, x3, z3, swap = 9, 1, 0, 9, 1, 0
    for t in reversed(range(255)):
        bit = (scalar >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = (x2 + z2) % P, (x2 - z2) % P
        aa, bb = a * a % P, b * b % P
        e = (aa - bb) % P
        c, d = (x3 + z3) % P, (x3 - z3) % P
        da, cb = d * a % P, c * b % P
        x3, z3 = (da + cb) ** 2 % P, x1 * (da - cb) ** 2 % P
        x2, z2 = aa * bb % P, e * (aa + A24 * e) % P
    if swap:
        x2, x3, z2, z3 = x3, x2, z3, z2
    return (x2 * pow(z2, P - 2, P) % P).to_bytes(32, "little")


def wg_pubkey(private_b64: str) -> str:
    """``wg pubkey``: the base64 public key of a base64 WireGuard private key."""
    return base64.b64encode(x25519_base(base64.b64decode(private_b64))).decode()
