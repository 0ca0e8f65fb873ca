# The kernel settings of emily.network as pure data (builtins only), so that
# tests/host/test_sysctl.py can evaluate it and compare every key with /proc/sys.
# mbit: uplink bandwidth in Mbit/s; rttMs: the longest RTT to serve at full speed (ms).
{ mbit, rttMs }:

let
  bdp = import ../lib/bdp.nix;
in
{
  # BBR congestion control needs the fq qdisc for pacing (mainline kernels have no BBRv2).
  "net.core.default_qdisc" = "fq";
  "net.ipv4.tcp_congestion_control" = "bbr";
  # find the path MTU through the WireGuard tunnel instead of black-holing
  "net.ipv4.tcp_mtu_probing" = 1;
  # the host routes between its VLANs and WireGuard
  "net.ipv4.conf.all.forwarding" = 1;
  "net.ipv6.conf.all.forwarding" = 1;
}
// bdp.sysctls mbit rttMs
