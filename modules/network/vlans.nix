# VLAN interfaces on the uplink (the switch port must be an 802.1Q trunk: docs/host.md),
# and the units that configure their addresses.
{ config, lib, ... }:

let
  cfg = config.emily.network;
  ifName = v: "vlan${toString v.id}";
in
{
  options.emily.network.addressUnits = lib.mkOption {
    type = lib.types.attrsOf lib.types.str;
    readOnly = true;
    default = lib.mapAttrs (_: v: "network-addresses-${ifName v}.service") cfg.vlans;
    defaultText = lib.literalMD "`network-addresses-vlan<id>.service` for each VLAN";
    description = ''
      By VLAN name, the unit that puts the host's address on that VLAN (NixOS' scripted
      networking). A service that binds a VLAN address starts after it.
    '';
  };

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
