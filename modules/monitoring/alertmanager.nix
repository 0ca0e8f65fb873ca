# Alertmanager with ./alertmanager.yml. SMTP credentials reach it as an environment
# file (rendered by sops.templates in modules/secrets.nix) that the nixpkgs unit
# substitutes into the config with envsubst.
{ config, lib, ... }:

let
  cfg = config.emily.monitoring;
in
{
  options.emily.monitoring.alertmanagerEnvironmentFile = lib.mkOption {
    type = lib.types.nullOr lib.types.path;
    default = null;
    description = "Environment file defining SMTP_AUTH_USERNAME and SMTP_AUTH_PASSWORD (from sops).";
  };

  config = lib.mkIf cfg.enable {
    services.prometheus.alertmanager = {
      enable = true;
      listenAddress = "127.0.0.1";
      port = 9093;
      configText = builtins.readFile ./alertmanager.yml;
      environmentFile = cfg.alertmanagerEnvironmentFile;
    };
  };
}
