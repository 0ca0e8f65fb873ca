"""modules/monitoring/scrape.nix rendered into a prometheus.yml with the rule files, and
checked by ``promtool check config``; the jobs the alert rules and the issue name exist."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.host.tools import MONITORING, run, tool
from tests.nix.nixeval import nix_eval

# The exporters' nixpkgs default ports, and the probe/target defaults of
# modules/monitoring/default.nix.
ARGS = """{
  ports = { prometheus = 9090; alertmanager = 9093; node = 9100; zfs = 9134;
            postgres = 9187; blackbox = 9115; nvidia-gpu = 9835; };
  httpProbes = [ "http://127.0.0.1:8461/healthz" "http://127.0.0.1:8462/metrics"
                 "http://127.0.0.1:9461/metrics" "http://10.10.0.1:3000/api/health" ];
  icmpProbes = [ "10.10.0.1" "10.20.0.1" "10.30.0.1" "10.99.0.1" ];
  emilyTargets = { emily-memory = 9461; emily-inference = 8461; emily-cognition = 8462; };
  gpu = GPU;
}"""


def scrape(gpu: bool = True) -> list[dict[str, Any]]:
    got = nix_eval(
        f"import ./modules/monitoring/scrape.nix {ARGS.replace('GPU', str(gpu).lower())}"
    )
    assert isinstance(got, list)
    return got


def prometheus_yml(tmp_path: Path, scrape_configs: list[dict[str, Any]]) -> Path:
    config = {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": [str(p) for p in sorted((MONITORING / "rules").glob("*.yml"))],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": ["127.0.0.1:9093"]}]}]},
        "scrape_configs": scrape_configs,
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(json.dumps(config, indent=2))
    return path


def test_promtool_check_config(tmp_path: Path) -> None:
    out = run([tool("promtool"), "check", "config", prometheus_yml(tmp_path, scrape())])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout
    assert out.stdout.count("rules found") == len(list((MONITORING / "rules").glob("*.yml")))


def test_every_source_the_issue_names_is_scraped() -> None:
    jobs = {j["job_name"]: j for j in scrape()}
    assert {"node", "zfs", "postgres", "blackbox-http", "blackbox-icmp", "nvidia-gpu"} <= set(jobs)
    targets = {j: job["static_configs"][0]["targets"] for j, job in jobs.items()}
    assert targets["emily-memory"] == ["127.0.0.1:9461"]
    assert targets["emily-inference"] == ["127.0.0.1:8461"]
    assert targets["emily-cognition"] == ["127.0.0.1:8462"]
    assert jobs["blackbox-http"]["params"] == {"module": ["http_2xx"]}
    assert jobs["blackbox-icmp"]["params"] == {"module": ["icmp"]}
    assert "nvidia-gpu" not in {j["job_name"] for j in scrape(gpu=False)}


def test_probe_modules_exist_in_blackbox_config() -> None:
    import yaml

    modules = yaml.safe_load((MONITORING / "blackbox.yml").read_text())["modules"]
    for job in scrape():
        for module in job.get("params", {}).get("module", []):
            assert module in modules, module


def test_alert_rules_match_the_job_names() -> None:
    """EmilyServiceDown selects job=~"emily-.*": every Emily job must be named so."""
    names = [j["job_name"] for j in scrape()]
    emily = [n for n in names if "emily" in n]
    assert emily and all(n.startswith("emily-") for n in emily)
    assert 'job=~"emily-.*"' in (MONITORING / "rules" / "availability.yml").read_text()


def test_injected_bad_relabel_regex_fails(tmp_path: Path) -> None:
    configs = scrape()
    configs[6]["relabel_configs"][0]["regex"] = "(unclosed"
    out = run([tool("promtool"), "check", "config", prometheus_yml(tmp_path, configs)])
    assert out.returncode != 0
