"""Prometheus alert rules: ``promtool check rules``, and one ``promtool test rules`` unit
test per rule (each rule is seen firing, and the tests can fail)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.host.tools import MONITORING, run, tool

RULES = sorted((MONITORING / "rules").glob("*.yml"))
TESTS = sorted((MONITORING / "rules-tests").glob("*_test.yml"))


def alert_rules() -> dict[str, dict[str, Any]]:
    """Every alerting rule by name, across the rule files."""
    found: dict[str, dict[str, Any]] = {}
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                assert rule["alert"] not in found, f"duplicate alert {rule['alert']}"
                found[rule["alert"]] = rule
    return found


def test_rule_files_exist() -> None:
    assert {p.stem for p in RULES} == {
        "availability",
        "zfs",
        "disk",
        "backup",
        "postgres",
        "gpu",
        "slo",
        "meta",
    }


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_promtool_check_rules(path: Path) -> None:
    out = run([tool("promtool"), "check", "rules", path])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@pytest.mark.parametrize("path", TESTS, ids=lambda p: p.name)
def test_promtool_test_rules(path: Path) -> None:
    out = run([tool("promtool"), "test", "rules", path.name], cwd=path.parent)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_rule_has_a_unit_test_that_sees_it_fire() -> None:
    fired: set[str] = set()
    for path in TESTS:
        doc = yaml.safe_load(path.read_text())
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                if check["exp_alerts"]:
                    fired.add(check["alertname"])
    assert set(alert_rules()) == fired


def test_every_rule_file_has_its_test_file() -> None:
    for path in TESTS:
        files = yaml.safe_load(path.read_text())["rule_files"]
        assert files == [f"../rules/{path.stem.removesuffix('_test')}.yml"]
    assert {p.stem.removesuffix("_test") for p in TESTS} == {p.stem for p in RULES}


def test_the_issue_s_alerts_are_covered() -> None:
    names = set(alert_rules())
    assert {
        "InstanceDown",
        "EmilyServiceDown",
        "ZfsPoolDegraded",
        "ZfsScrubErrors",
        "ZfsScrubTooOld",
        "DiskWillFillIn24h",
        "BackupFailed",
        "BackupTooOld",
        "PostgresDown",
        "PostgresConnectionsNearMax",
        "GpuTemperatureHigh",
        "GpuEccErrors",
        "EmilyReflexLatencySLO",
        "Watchdog",
    } <= names


def test_reflex_slo_expression_and_budget() -> None:
    rule = alert_rules()["EmilyReflexLatencySLO"]
    assert rule["expr"] == (
        "histogram_quantile(0.99, sum by (le) "
        '(rate(emily_cognition_stage_seconds_bucket{stage="reflex"}[5m]))) > 0.05'
    )


def test_thresholds_in_expressions() -> None:
    rules = alert_rules()
    assert "35 * 86400" in rules["ZfsScrubTooOld"]["expr"]
    assert "26 * 3600" in rules["BackupTooOld"]["expr"]
    assert "predict_linear" in rules["DiskWillFillIn24h"]["expr"]
    assert rules["Watchdog"]["expr"] == "vector(1)"
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "none"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_injected_wrong_threshold_fails_its_unit_test(tmp_path: Path) -> None:
    """The unit tests can fail: a 10x looser SLO budget no longer fires where expected."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules-tests").mkdir()
    slo = (MONITORING / "rules" / "slo.yml").read_text()
    assert "> 0.05" in slo
    (tmp_path / "rules" / "slo.yml").write_text(slo.replace("> 0.05", "> 0.5"))
    shutil.copy(MONITORING / "rules-tests" / "slo_test.yml", tmp_path / "rules-tests")
    out = run([tool("promtool"), "test", "rules", "slo_test.yml"], cwd=tmp_path / "rules-tests")
    assert out.returncode != 0
    assert "EmilyReflexLatencySLO" in out.stdout + out.stderr


def test_injected_syntax_error_fails_check(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: up ==\n")
    out = run([tool("promtool"), "check", "rules", bad])
    assert out.returncode != 0
