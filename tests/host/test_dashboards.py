"""Grafana provisioning files: valid JSON, consistent with each other, valid PromQL."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.host.tools import MONITORING, run, tool

DASHBOARDS = sorted((MONITORING / "dashboards").glob("*.json"))
DATASOURCES = MONITORING / "grafana" / "datasources.json"
DS_INPUT = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
SERVICE_DASHBOARDS = {"inference", "memory", "cognition", "neural", "perception"}


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
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert dash["uid"] and dash["title"]
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DS_INPUT, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"] == DS_INPUT for t in panel["targets"]), panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_takes_its_datasource_as_an_input(path: Path) -> None:
    """``${DS_PROMETHEUS}`` is an import input and a datasource variable, so the same file
    imports into any Grafana (the import dialog asks for it) and provisions on the host
    (the variable defaults to the provisioned Prometheus)."""
    dash = load(path)
    inputs = {i["name"]: i for i in dash["__inputs"]}
    assert inputs["DS_PROMETHEUS"]["type"] == "datasource"
    assert inputs["DS_PROMETHEUS"]["pluginId"] == "prometheus"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert '"uid": "prometheus"' not in path.read_text(), "a fixed datasource uid is left"
    prom = [d for d in load(DATASOURCES)["datasources"] if d["type"] == "prometheus"]
    assert prom[0]["isDefault"], "the variable's default must be the provisioned Prometheus"


def test_one_dashboard_per_service() -> None:
    assert {p.stem for p in DASHBOARDS} >= {"host", *SERVICE_DASHBOARDS}


def _exported_series() -> set[str]:
    """Every series name the services' metric classes export, from real registries."""
    from prometheus_client import CollectorRegistry

    from emily.bus.schemas.memory import PoolStats
    from emily.cognition.metrics import CognitionMetrics
    from emily.cognition.neural.metrics import NeuralMetrics
    from emily.inference.metrics import InferenceMetrics
    from emily.memory.metrics import MemoryMetrics
    from emily.perception.service import PerceptionMetrics

    memory = MemoryMetrics()
    fields = {f: 0 for f in PoolStats.model_fields if f != "v"}
    memory.watch_pool(lambda: PoolStats(**fields))
    neural = CollectorRegistry()
    NeuralMetrics(neural)
    registries = [
        InferenceMetrics().registry,
        memory.registry,
        CognitionMetrics().registry,
        neural,
        PerceptionMetrics().registry,
    ]
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "info": ("_info",),
        "gauge": ("",),
    }
    names = set()
    for registry in registries:
        for family in registry.collect():
            names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


@pytest.mark.parametrize("name", sorted(SERVICE_DASHBOARDS))
def test_service_dashboard_queries_series_the_service_exports(name: str) -> None:
    exported = _exported_series()
    dash = load(MONITORING / "dashboards" / f"{name}.json")
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    used = {m for e in exprs for m in re.findall(r"\bemily_[a-z0-9_]+", e)}
    assert used, name
    assert all(m.startswith(f"emily_{name}_") for m in used), used
    assert used <= exported, f"not exported by any service: {sorted(used - exported)}"


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
