# TCP: BBR with fq, socket buffers sized from the bandwidth-delay product (./sysctl.nix).
{ config, lib, ... }:

let
  cfg = config.emily.network;
in
{
  config = lib.mkIf cfg.enable {
    boot.kernelModules = [ "tcp_bbr" ];
    boot.kernel.sysctl = import ./sysctl.nix {
      mbit = cfg.bandwidthMbit;
      rttMs = cfg.rttMs;
    };
  };
}
