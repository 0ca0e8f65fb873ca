# What Prometheus scrapes and blackbox probes of the Emily services, as pure data
# (builtins only): only the services enabled on this host, so that no availability alert
# fires for one that does not run here. Tested in tests/nix/targets_test.nix.
#
# services: { memory = { enable; metricsPort; port; }; inference = { enable; port; };
#             cognition = { enable; port; }; perception = { enable; metricsPort; }; }
# (the services.emily.* options; a service missing from the set counts as disabled;
# memory's HTTP API is probed at /healthz, its /metrics when the API is off: port 0)
services:
let
  local = port: path: "http://127.0.0.1:${toString port}${path}";
  on = name: services ? ${name} && services.${name}.enable;
  when = cond: value: if cond then [ value ] else [ ];
in
{
  # scrape job name -> /metrics port on 127.0.0.1
  scrape =
    builtins.listToAttrs (
      when (on "memory") {
        name = "emily-memory";
        value = services.memory.metricsPort;
      }
      ++ when (on "inference") {
        name = "emily-inference";
        value = services.inference.port;
      }
      ++ when (on "cognition") {
        name = "emily-cognition";
        value = services.cognition.port;
      }
      ++ when (on "perception") {
        name = "emily-perception";
        value = services.perception.metricsPort;
      }
    );

  # URLs the blackbox exporter probes
  probes =
    when (on "inference") (local services.inference.port "/healthz")
    ++ when (on "cognition") (local services.cognition.port "/healthz")
    ++ when (on "memory") (
      if (services.memory.port or 0) != 0 then
        local services.memory.port "/healthz"
      else
        local services.memory.metricsPort "/metrics"
    )
    ++ when (on "perception") (local services.perception.metricsPort "/metrics");
}
