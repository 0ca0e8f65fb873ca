# The default VLANs of the uplink (emily.network.vlans), as pure data: read by
# ./default.nix and by tests/host/test_network_configs.py.
{
  mgmt = {
    id = 10;
    prefix = "10.10.0";
    domain = "mgmt.emily.internal";
  };
  services = {
    id = 20;
    prefix = "10.20.0";
    domain = "svc.emily.internal";
  };
  storage = {
    id = 30;
    prefix = "10.30.0";
    domain = "storage.emily.internal";
  };
}
