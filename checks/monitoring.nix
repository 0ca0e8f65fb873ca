# VM test of modules/monitoring: Prometheus scrapes the node and blackbox exporters,
# loads the rules, and the always-firing Watchdog alert reaches Alertmanager; Grafana
# refuses anonymous users and serves the provisioned dashboard to the sops admin.
{ pkgs, sops-nix }:

let
  testSecrets = import ./lib/test-secrets.nix sops-nix.nixosModules.sops;
in
pkgs.testers.runNixOSTest {
  name = "emily-monitoring";

  nodes.machine = {
    imports = [
      ../modules
      testSecrets
    ];
    virtualisation.memorySize = 2048;
    emily.monitoring.enable = true;
    # a faster rule evaluation than the default 1m, so the test does not wait long
    services.prometheus.globalConfig = {
      scrape_interval = "5s";
      evaluation_interval = "5s";
    };
  };

  testScript = ''
    import json

    machine.wait_for_unit("prometheus.service")
    machine.wait_for_unit("alertmanager.service")
    machine.wait_for_unit("prometheus-node-exporter.service")
    machine.wait_for_unit("grafana.service")
    machine.wait_for_open_port(9090)
    machine.wait_for_open_port(9093)

    def prom(query):
        out = machine.succeed(f"curl -sf --get http://127.0.0.1:9090/api/v1/query --data-urlencode 'query={query}'")
        return json.loads(out)["data"]["result"]

    def has_result(query):
        def check(_last_try):
            try:
                return len(prom(query)) > 0
            except Exception:
                return False
        retry(check, timeout_seconds=180)

    with subtest("Prometheus scrapes the node exporter and probes over blackbox"):
        has_result('up{job="node"} == 1')
        has_result('probe_success{instance="http://127.0.0.1:9090/-/healthy"} == 1')

    with subtest("every rule file is loaded"):
        groups = json.loads(machine.succeed("curl -sf http://127.0.0.1:9090/api/v1/rules"))["data"]["groups"]
        names = {g["name"] for g in groups}
        assert {"availability", "zfs", "disk", "backup", "postgres", "gpu", "emily-slo", "meta"} <= names, names

    with subtest("the Watchdog alert reaches Alertmanager"):
        machine.wait_until_succeeds("curl -sf http://127.0.0.1:9093/api/v2/alerts | grep -q Watchdog", timeout=180)

    with subtest("Alertmanager gets SMTP credentials from the sops template"):
        machine.succeed("systemctl show alertmanager -p EnvironmentFiles | grep -q /run/secrets/rendered/alertmanager.env")

    with subtest("Grafana: no anonymous access; the admin sees the provisioned dashboard"):
        machine.wait_for_open_port(3000)
        code = machine.succeed("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:3000/api/dashboards/uid/emily-host").strip()
        assert code == "401", code
        machine.succeed("curl -sf -u admin:\"$(cat /run/secrets/grafana/admin-password)\" http://127.0.0.1:3000/api/dashboards/uid/emily-host | grep -q 'Emily cloudlab host'")
        machine.succeed("curl -sf -u admin:\"$(cat /run/secrets/grafana/admin-password)\" http://127.0.0.1:3000/api/datasources/uid/prometheus | grep -q prometheus")
  '';
}
