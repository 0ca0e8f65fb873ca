# Monitoring: Prometheus (90 days / 50 GB), exporters, Alertmanager and Grafana. The
# programs' own configuration lives in data files beside this one (rules/*.yml,
# alertmanager.yml, blackbox.yml, grafana/, dashboards/), validated in `make test`.
{ config, lib, ... }:

let
  targets = import ./targets.nix config.services.emily;
in
{
  imports = [
    ./prometheus.nix
    ./exporters.nix
    ./alertmanager.nix
    ./grafana.nix
  ];

  options.emily.monitoring = {
    enable = lib.mkEnableOption "Prometheus, Alertmanager, Grafana and the exporters";

    textfileDir = lib.mkOption {
      type = lib.types.str;
      default = "/var/lib/prometheus-node-exporter-text";
      description = "Directory of `*.prom` files the node exporter's textfile collector reads (scrub and backup results).";
    };

    emilyTargets = lib.mkOption {
      type = lib.types.attrsOf lib.types.port;
      default = targets.scrape;
      defaultText = lib.literalMD "the /metrics port of each Emily service enabled on this host";
      description = ''
        The Emily services' /metrics ports on 127.0.0.1, by scrape job name. Only the
        services that run here, so that no availability alert fires for one that does not.
      '';
    };

    httpProbes = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = targets.probes ++ [
        "http://${config.emily.monitoring.grafana.listenAddress}:3000/api/health"
        "http://127.0.0.1:9090/-/healthy"
        "http://127.0.0.1:9093/-/healthy"
      ];
      defaultText = lib.literalMD "the Emily services enabled here, Grafana, Prometheus and Alertmanager";
      description = "URLs the blackbox exporter probes over HTTP (every service that runs here).";
    };

    icmpProbes = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [
        "10.10.0.1"
        "10.20.0.1"
        "10.30.0.1"
        "10.99.0.1"
      ];
      description = "Addresses the blackbox exporter pings (the host on each VLAN and WireGuard).";
    };
  };
}
