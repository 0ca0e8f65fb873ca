# Monitoring: Prometheus (90 days / 50 GB), exporters, Alertmanager and Grafana. The
# programs' own configuration lives in data files beside this one (rules/*.yml,
# alertmanager.yml, blackbox.yml, grafana/, dashboards/), validated in `make test`.
{ config, lib, ... }:

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
      default = {
        emily-memory = 9461;
        emily-inference = 8461;
        emily-cognition = 8462;
      };
      description = "The Emily services' /metrics ports on 127.0.0.1, by scrape job name.";
    };

    httpProbes = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [
        "http://127.0.0.1:8461/healthz"
        "http://127.0.0.1:8462/metrics"
        "http://127.0.0.1:9461/metrics"
        "http://${config.emily.monitoring.grafana.listenAddress}:3000/api/health"
        "http://127.0.0.1:9090/-/healthy"
        "http://127.0.0.1:9093/-/healthy"
      ];
      defaultText = lib.literalMD "the Emily services, Grafana, Prometheus and Alertmanager";
      description = "URLs the blackbox exporter probes over HTTP (every service).";
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
