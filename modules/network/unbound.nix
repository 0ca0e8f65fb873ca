# Unbound's `server:` settings as pure data (builtins only): one static zone per VLAN
# naming the host, answering only the VLANs and localhost. Validated with
# `unbound-checkconf` in tests/host/test_network_configs.py.
# vlans: a list of { id; prefix; domain; }; hostName: the host's name in each zone.
{ vlans, hostName }:

{
  interface = [ "127.0.0.1" ] ++ map (v: "${v.prefix}.1") vlans;
  # bind the VLAN addresses even before the interfaces have them
  ip-freebind = true;
  access-control = [ "127.0.0.0/8 allow" ] ++ map (v: "${v.prefix}.0/24 allow") vlans;
  local-zone = map (v: ''"${v.domain}." static'') vlans;
  local-data = map (v: ''"${hostName}.${v.domain}. IN A ${v.prefix}.1"'') vlans;
}
