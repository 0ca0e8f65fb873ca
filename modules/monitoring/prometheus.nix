# Prometheus: scrapes node, zfs, postgres, blackbox (HTTP and ICMP), nvidia-gpu and the
# Emily services; evaluates rules/*.yml; sends alerts to the local Alertmanager.
{ config, lib, ... }:

let
  cfg = config.emily.monitoring;
  exporters = config.services.prometheus.exporters;
  local = port: "127.0.0.1:${toString port}";
  job = name: port: {
    job_name = name;
    static_configs = [ { targets = [ (local port) ]; } ];
  };
  probe = name: module: targets: {
    job_name = name;
    metrics_path = "/probe";
    params.module = [ module ];
    static_configs = [ { inherit targets; } ];
    relabel_configs = [
      {
        source_labels = [ "__address__" ];
        target_label = "__param_target";
      }
      {
        source_labels = [ "__param_target" ];
        target_label = "instance";
      }
      {
        target_label = "__address__";
        replacement = local exporters.blackbox.port;
      }
      {
        target_label = "module";
        replacement = module;
      }
    ];
  };
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
        {
          static_configs = [
            { targets = [ (local config.services.prometheus.alertmanager.port) ]; }
          ];
        }
      ];
      scrapeConfigs = [
        (job "prometheus" 9090)
        (job "alertmanager" config.services.prometheus.alertmanager.port)
        (job "node" exporters.node.port)
        (job "zfs" exporters.zfs.port)
        (job "postgres" exporters.postgres.port)
        (job "blackbox" exporters.blackbox.port)
        (probe "blackbox-http" "http_2xx" cfg.httpProbes)
        (probe "blackbox-icmp" "icmp" cfg.icmpProbes)
      ]
      ++ lib.optional config.emily.gpu.enable (job "nvidia-gpu" exporters.nvidia-gpu.port)
      ++ lib.mapAttrsToList job cfg.emilyTargets;
    };
  };
}
