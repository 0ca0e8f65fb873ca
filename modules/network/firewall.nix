# Firewall: nothing is open on all interfaces. SSH answers on the management VLAN, on
# WireGuard and (unless `sshOnUplink` is off) on the uplink, so that a switch over the
# site's control network never locks the administrator out; Grafana on the management
# VLAN and WireGuard; Postgres and Zenoh on the services VLAN, and Zenoh also on WireGuard
# when zenohd meshes with other hosts; DHCP and DNS on every VLAN; WireGuard's UDP port on
# the uplink.
{ config, lib, ... }:

let
  cfg = config.emily.network;
  ifOf = name: "vlan${toString cfg.vlans.${name}.id}";
  ports = config.emily.network.firewallPorts;
  meshed = config.emily.zenohd.enable && config.emily.zenohd.mesh.peers != [ ];
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
      default = config.emily.zenohd.port;
      defaultText = lib.literalExpression "config.emily.zenohd.port";
      description = "zenohd's TCP port (services VLAN; WireGuard when it meshes).";
    };
  };

  options.emily.network.sshOnUplink = lib.mkOption {
    type = lib.types.bool;
    default = true;
    description = ''
      Open SSH (key-only: hosts/cloudlab sets no password login) on the uplink too. Off:
      SSH only over the management VLAN and WireGuard, which locks you out if neither is
      set up yet.
    '';
  };

  config = lib.mkIf cfg.enable {
    # the openssh module would otherwise open port 22 on every interface
    services.openssh.openFirewall = false;

    networking.firewall = {
      enable = true;
      interfaces = {
        ${cfg.uplink} = {
          allowedUDPPorts = [ cfg.wireguard.listenPort ];
          allowedTCPPorts = lib.optional cfg.sshOnUplink ports.ssh;
        };
        wg0.allowedTCPPorts = [
          ports.ssh
          ports.grafana
        ]
        ++ lib.optional meshed ports.zenoh;
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
