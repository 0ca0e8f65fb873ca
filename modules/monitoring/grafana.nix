# Grafana: admin password and secret key from files (sops), anonymous access off,
# listening on the management VLAN and WireGuard addresses only (firewalled the same way:
# modules/network/firewall.nix). Datasources and dashboards come from JSON files here.
{ config, lib, ... }:

let
  cfg = config.emily.monitoring.grafana;
  net = config.emily.network;
in
{
  options.emily.monitoring.grafana = {
    listenAddress = lib.mkOption {
      type = lib.types.str;
      default = if net.enable then "${net.vlans.mgmt.prefix}.1" else "127.0.0.1";
      defaultText = lib.literalExpression ''"''${emily.network.vlans.mgmt.prefix}.1"'';
      description = ''
        Address Grafana binds. Grafana binds one address: the management VLAN's. Over
        WireGuard, reach it at the same address (the tunnel routes the management VLAN;
        add `10.10.0.0/24` to the laptop peer's AllowedIPs).
      '';
    };
    adminPasswordFile = lib.mkOption {
      type = lib.types.str;
      description = "File with the admin password (sops, modules/secrets.nix).";
    };
    secretKeyFile = lib.mkOption {
      type = lib.types.str;
      description = "File with the key Grafana signs and encrypts with (sops, modules/secrets.nix).";
    };
  };

  config = lib.mkIf config.emily.monitoring.enable {
    # Grafana binds the management VLAN address: start once it exists
    systemd.services.grafana = lib.mkIf net.enable {
      after = [ net.addressUnits.mgmt ];
      wants = [ net.addressUnits.mgmt ];
      serviceConfig.Restart = lib.mkDefault "on-failure";
    };

    services.grafana = {
      enable = true;
      settings = {
        server = {
          http_addr = cfg.listenAddress;
          http_port = config.emily.network.firewallPorts.grafana;
        };
        security = {
          admin_user = "admin";
          admin_password = "$__file{${cfg.adminPasswordFile}}";
          secret_key = "$__file{${cfg.secretKeyFile}}";
          disable_gravatar = true;
        };
        "auth.anonymous".enabled = false;
        users.allow_sign_up = false;
        analytics.reporting_enabled = false;
      };
      provision = {
        enable = true;
        datasources.path = ./grafana/datasources.json;
        dashboards.settings = {
          apiVersion = 1;
          providers = [
            {
              name = "emily";
              type = "file";
              disableDeletion = true;
              options.path = ./dashboards;
            }
          ];
        };
      };
    };
  };
}
