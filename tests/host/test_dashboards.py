"""Grafana provisioning files: valid JSON, consistent with each other, valid PromQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.host.tools import MONITORING, run, tool

DASHBOARDS = sorted((MONITORING / "dashboards").glob("*.json"))
DATASOURCES = MONITORING / "grafana" / "datasources.json"


def load(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.mark.parametrize("path", [*DASHBOARDS, DATASOURCES], ids=lambda p: p.name)
def test_is_valid_json(path: Path) -> None:
    load(path)


def test_datasources() -> None:
    doc = load(DATASOURCES)
    assert doc["apiVersion"] == 1
    prom = [d for d in doc["datasources"] if d["type"] == "prometheus"]
    assert len(prom) == 1 and prom[0]["isDefault"] and prom[0]["url"] == "http://127.0.0.1:9090"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_shape(path: Path) -> None:
    dash = load(path)
    uids = {d["uid"] for d in load(DATASOURCES)["datasources"]}
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert dash["uid"] and dash["title"]
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["targets"], panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_are_valid_promql(path: Path, tmp_path: Path) -> None:
    """Each query becomes a recording rule, which ``promtool check rules`` parses."""
    rules = []
    for panel in load(path)["panels"]:
        for i, target in enumerate(panel.get("targets", [])):
            rules.append({"record": f"dashboard:panel{panel['id']}:q{i}", "expr": target["expr"]})
    assert rules
    file = tmp_path / "queries.yml"
    file.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = run([tool("promtool"), "check", "rules", file])
    assert out.returncode == 0, out.stdout + out.stderr


def test_injected_bad_query_is_caught(tmp_path: Path) -> None:
    file = tmp_path / "q.yml"
    rule = {"record": "x:y", "expr": "sum(rate(foo[5m]) by"}
    file.write_text(json.dumps({"groups": [{"name": "d", "rules": [rule]}]}))
    assert run([tool("promtool"), "check", "rules", file]).returncode != 0


def test_blackbox_config_checks() -> None:
    out = run(
        [
            tool("prometheus-blackbox-exporter", "blackbox_exporter"),
            f"--config.file={MONITORING / 'blackbox.yml'}",
            "--config.check",
        ]
    )
    assert out.returncode == 0, out.stderr
    assert "Config file is ok" in out.stderr


def test_injected_bad_blackbox_module_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bb.yml"
    bad.write_text((MONITORING / "blackbox.yml").read_text().replace("timeout: 5s", "timeot: 5s"))
    out = run(
        [
            tool("prometheus-blackbox-exporter", "blackbox_exporter"),
            f"--config.file={bad}",
            "--config.check",
        ]
    )
    assert out.returncode != 0
