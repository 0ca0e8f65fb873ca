# One DHCP scope (Kea) and one DNS view (Unbound) per VLAN; the host is .1 on each.
{ config, lib, ... }:

let
  cfg = config.emily.network;
  ifName = v: "vlan${toString v.id}";
  vlans = lib.attrValues cfg.vlans;
in
{
  config = lib.mkIf cfg.enable {
    services.kea.dhcp4 = {
      enable = true;
      settings = {
        interfaces-config = {
          interfaces = map ifName vlans;
          # the VLAN interfaces may come up after Kea: retry binding instead of failing
          service-sockets-max-retries = 20;
          service-sockets-retry-wait-time = 3000;
        };
        lease-database = {
          type = "memfile";
          persist = true;
          name = "/var/lib/kea/dhcp4.leases";
        };
        valid-lifetime = 3600;
        renew-timer = 900;
        rebind-timer = 1800;
        subnet4 = map (v: {
          inherit (v) id;
          subnet = "${v.prefix}.0/24";
          interface = ifName v;
          pools = [ { pool = "${v.prefix}.100 - ${v.prefix}.199"; } ];
          option-data = [
            {
              name = "routers";
              data = "${v.prefix}.1";
            }
            {
              name = "domain-name-servers";
              data = "${v.prefix}.1";
            }
            {
              name = "domain-name";
              data = v.domain;
            }
          ];
        }) vlans;
      };
    };

    services.unbound = {
      enable = true;
      settings.server = {
        interface = [ "127.0.0.1" ] ++ map (v: "${v.prefix}.1") vlans;
        # bind the VLAN addresses even before the interfaces have them
        ip-freebind = true;
        access-control = [ "127.0.0.0/8 allow" ] ++ map (v: "${v.prefix}.0/24 allow") vlans;
        local-zone = map (v: ''"${v.domain}." static'') vlans;
        local-data = map (
          v: ''"${config.networking.hostName}.${v.domain}. IN A ${v.prefix}.1"''
        ) vlans;
      };
    };
  };
}
