# Network: VLANs on the uplink with DHCP and DNS per VLAN, WireGuard, a firewall that
# scopes each service to its VLAN, and TCP tuned for the bandwidth-delay product.
{ lib, ... }:

let
  vlanType = lib.types.submodule {
    options = {
      id = lib.mkOption {
        type = lib.types.ints.between 1 4094;
        description = "802.1Q tag.";
      };
      prefix = lib.mkOption {
        type = lib.types.strMatching "[0-9]+\\.[0-9]+\\.[0-9]+";
        example = "10.10.0";
        description = "The VLAN's /24 as its first three octets; the host is .1, DHCP hands out .100-.199.";
      };
      domain = lib.mkOption {
        type = lib.types.str;
        description = "DNS domain served to this VLAN.";
      };
    };
  };
in
{
  imports = [
    ./tcp.nix
    ./vlans.nix
    ./dhcp-dns.nix
    ./wireguard.nix
    ./firewall.nix
  ];

  options.emily.network = {
    enable = lib.mkEnableOption "the host network (VLANs, DHCP/DNS, WireGuard, firewall, TCP tuning)";

    uplink = lib.mkOption {
      type = lib.types.str;
      example = "eno1";
      description = "The NIC connected to the switch's 802.1Q trunk port (VLANs 10/20/30 tagged).";
    };

    vlans = lib.mkOption {
      type = lib.types.attrsOf vlanType;
      default = import ./vlans-default.nix;
      description = ''
        The VLANs on the uplink. The names `mgmt`, `services` and `storage` carry the
        firewall policy (SSH and Grafana from mgmt; Postgres and Zenoh from services;
        backups on storage). The interface of VLAN `n` is `vlan<n>`.
      '';
    };

    bandwidthMbit = lib.mkOption {
      type = lib.types.ints.positive;
      default = 1000;
      description = "Uplink bandwidth (Mbit/s) for the socket-buffer size (modules/lib/bdp.nix).";
    };

    rttMs = lib.mkOption {
      type = lib.types.ints.positive;
      default = 100;
      description = "Longest round-trip time (ms) to sustain full bandwidth over, e.g. to the offsite backup.";
    };
  };
}
