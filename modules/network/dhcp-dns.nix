# One DHCP scope (Kea) and one DNS zone (Unbound) per VLAN; the host is .1 on each.
# The settings themselves are pure data in ./kea.nix and ./unbound.nix.
{ config, lib, ... }:

let
  cfg = config.emily.network;
  vlans = lib.attrValues cfg.vlans;
in
{
  config = lib.mkIf cfg.enable {
    services.kea.dhcp4 = {
      enable = true;
      settings = import ./kea.nix { inherit vlans; };
    };

    services.unbound = {
      enable = true;
      settings.server = import ./unbound.nix {
        inherit vlans;
        inherit (config.networking) hostName;
      };
    };
  };
}
