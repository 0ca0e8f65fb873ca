# Prometheus scrape configs as pure data (builtins only), so that
# tests/host/test_prometheus_config.py renders them into a prometheus.yml and runs
# `promtool check config` on it.
#
# ports: { prometheus; alertmanager; node; zfs; postgres; blackbox; nvidia-gpu; }
# httpProbes / icmpProbes: what blackbox probes; emilyTargets: job name -> port of each
# Emily service's /metrics on 127.0.0.1; gpu: scrape the nvidia-gpu exporter.
{
  ports,
  httpProbes,
  icmpProbes,
  emilyTargets,
  gpu,
}:

let
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
        replacement = local ports.blackbox;
      }
      {
        target_label = "module";
        replacement = module;
      }
    ];
  };
in
[
  (job "prometheus" ports.prometheus)
  (job "alertmanager" ports.alertmanager)
  (job "node" ports.node)
  (job "zfs" ports.zfs)
  (job "postgres" ports.postgres)
  (job "blackbox" ports.blackbox)
  (probe "blackbox-http" "http_2xx" httpProbes)
  (probe "blackbox-icmp" "icmp" icmpProbes)
]
++ (if gpu then [ (job "nvidia-gpu" ports.nvidia-gpu) ] else [ ])
++ map (name: job name emilyTargets.${name}) (builtins.attrNames emilyTargets)
