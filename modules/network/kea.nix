# Kea DHCPv4 settings as pure data (builtins only): one scope per VLAN, the host (.1) as
# router and DNS server, leases .100-.199. Validated with `kea-dhcp4 -t` in
# tests/host/test_network_configs.py. vlans: a list of { id; prefix; domain; }.
{ vlans }:

let
  ifName = v: "vlan${toString v.id}";
in
{
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
}
