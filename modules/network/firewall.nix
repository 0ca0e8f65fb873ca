# Firewall: nothing is open on all interfaces. SSH and Grafana answer on the management
# VLAN and WireGuard only; Postgres and Zenoh on the services VLAN only; DHCP and DNS on
# every VLAN; WireGuard's UDP port on the uplink.
{ config, lib, ... }:

let
  cfg = config.emily.network;
  ifOf = name: "vlan${toString cfg.vlans.${name}.id}";
  ports = config.emily.network.firewallPorts;
  dhcpDns = {
    allowedUDPPorts = [
      53
      67
    ];
    allowedTCPPorts = [ 53 ];
  };
in
{
  options.emily.network.firewallPorts = {
    ssh = lib.mkOption {
      type = lib.types.port;
      default = 22;
      description = "SSH port (management VLAN and WireGuard only).";
    };
    grafana = lib.mkOption {
      type = lib.types.port;
      default = 3000;
      description = "Grafana port (management VLAN and WireGuard only).";
    };
    postgres = lib.mkOption {
      type = lib.types.port;
      default = 5432;
      description = "Postgres port (services VLAN only).";
    };
    zenoh = lib.mkOption {
      type = lib.types.port;
      default = 7447;
      description = "zenohd's TCP port (services VLAN only).";
    };
  };

  config = lib.mkIf cfg.enable {
    # the openssh module would otherwise open port 22 on every interface
    services.openssh.openFirewall = false;

    networking.firewall = {
      enable = true;
      interfaces = {
        ${cfg.uplink}.allowedUDPPorts = [ cfg.wireguard.listenPort ];
        wg0.allowedTCPPorts = [
          ports.ssh
          ports.grafana
        ];
        ${ifOf "mgmt"} = dhcpDns // {
          allowedTCPPorts = dhcpDns.allowedTCPPorts ++ [
            ports.ssh
            ports.grafana
          ];
        };
        ${ifOf "services"} = dhcpDns // {
          allowedTCPPorts = dhcpDns.allowedTCPPorts ++ [
            ports.postgres
            ports.zenoh
          ];
        };
        ${ifOf "storage"} = dhcpDns;
      };
    };
  };
}
