# VLAN interfaces on the uplink (the switch port must be an 802.1Q trunk: README).
{ config, lib, ... }:

let
  cfg = config.emily.network;
  ifName = v: "vlan${toString v.id}";
in
{
  config = lib.mkIf cfg.enable {
    networking.vlans = lib.mapAttrs' (
      _: v:
      lib.nameValuePair (ifName v) {
        inherit (v) id;
        interface = cfg.uplink;
      }
    ) cfg.vlans;

    networking.interfaces = lib.mapAttrs' (
      _: v:
      lib.nameValuePair (ifName v) {
        ipv4.addresses = [
          {
            address = "${v.prefix}.1";
            prefixLength = 24;
          }
        ];
      }
    ) cfg.vlans;
  };
}
