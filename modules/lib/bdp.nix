# TCP socket buffers from the bandwidth-delay product: a pure helper (builtins only),
# tested with `nix-instantiate --eval` (tests/nix/bdp_test.nix).
#
# BDP (bytes) = bandwidth (bit/s) / 8 * RTT (s) = mbit * 125 * rttMs. A buffer must
# hold one BDP to keep the pipe full; we round it up to a power of two. For 1 Gbit/s
# at 100 ms the BDP is 12.5 MB, so the buffer is 16 MiB (not 128 MiB).
rec {
  # Smallest power of two >= n (n >= 1).
  nextPow2 =
    n:
    let
      go = p: if p >= n then p else go (p * 2);
    in
    go 1;

  # mbit: bandwidth in Mbit/s; rttMs: round-trip time in ms. Returns bytes.
  bdpBytes =
    mbit: rttMs:
    if !(builtins.isInt mbit) || !(builtins.isInt rttMs) || mbit < 1 || rttMs < 1 then
      throw "bdp: bandwidth (Mbit/s) and RTT (ms) must be positive integers, got ${builtins.toJSON mbit} and ${builtins.toJSON rttMs}"
    else
      mbit * 125 * rttMs;

  # Socket buffer size in bytes: the BDP rounded up to a power of two, never below
  # 4 MiB (the kernel's autotuning ceiling stays sane on short, fast links).
  bufferBytes =
    mbit: rttMs:
    let
      b = nextPow2 (bdpBytes mbit rttMs);
      floor = 4 * 1024 * 1024;
    in
    if b < floor then floor else b;

  # The sysctls (name -> value) that size the socket buffers: the maxima as integers
  # (nixpkgs declares rmem_max/wmem_max as `null or unsigned integer`), and the
  # autotuning triples "min default max" of tcp_rmem/tcp_wmem as strings (bytes).
  sysctls =
    mbit: rttMs:
    let
      b = bufferBytes mbit rttMs;
    in
    {
      "net.core.rmem_max" = b;
      "net.core.wmem_max" = b;
      "net.ipv4.tcp_rmem" = "4096 131072 ${toString b}";
      "net.ipv4.tcp_wmem" = "4096 16384 ${toString b}";
    };
}
