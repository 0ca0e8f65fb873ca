# Prometheus: scrapes node, zfs, postgres, blackbox (HTTP and ICMP), nvidia-gpu and the
# Emily services (./scrape.nix); evaluates rules/*.yml; sends alerts to the local
# Alertmanager. Keeps 90 days, and at most 50 GB.
{ config, lib, ... }:

let
  cfg = config.emily.monitoring;
  exporters = config.services.prometheus.exporters;
  alertmanagerPort = config.services.prometheus.alertmanager.port;
  rules = builtins.attrNames (builtins.readDir ./rules);
in
{
  config = lib.mkIf cfg.enable {
    services.prometheus = {
      enable = true;
      listenAddress = "127.0.0.1";
      port = 9090;
      retentionTime = "90d";
      extraFlags = [ "--storage.tsdb.retention.size=50GB" ];
      ruleFiles = map (f: ./rules + "/${f}") rules;
      alertmanagers = [
        { static_configs = [ { targets = [ "127.0.0.1:${toString alertmanagerPort}" ]; } ]; }
      ];
      scrapeConfigs = import ./scrape.nix {
        ports = {
          prometheus = 9090;
          alertmanager = alertmanagerPort;
          node = exporters.node.port;
          zfs = exporters.zfs.port;
          postgres = exporters.postgres.port;
          blackbox = exporters.blackbox.port;
          nvidia-gpu = exporters.nvidia-gpu.port;
        };
        inherit (cfg) httpProbes icmpProbes emilyTargets;
        gpu = config.emily.gpu.enable;
      };
    };
  };
}
