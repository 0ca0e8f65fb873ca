# ZFS operation: hostId, ARC limits from RAM, monthly scrub and periodic trim.
{ config, lib, ... }:

let
  cfg = config.emily.storage;
  arc = import ../lib/arc.nix;
  layout = import ./layout.nix;
in
{
  config = lib.mkIf cfg.enable {
    boot.supportedFilesystems = [ "zfs" ];
    networking.hostId = cfg.hostId;

    # no NixOS option exists for the ARC: module parameters on the kernel command line
    boot.kernelParams = arc.kernelParams cfg.ramGiB;

    services.zfs.autoScrub = {
      enable = true;
      interval = "monthly";
      pools = [ layout.pool ];
    };
    services.zfs.trim.enable = true;
  };
}
