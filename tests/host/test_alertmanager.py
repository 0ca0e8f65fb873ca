"""Alertmanager routes: ``amtool check-config``, routing by severity, no inline secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.host.tools import MONITORING, run, tool

CONFIG = MONITORING / "alertmanager.yml"


def test_amtool_check_config() -> None:
    out = run([tool("amtool"), "check-config", CONFIG])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=ZfsPoolDegraded"], "page-oncall"),
        (["severity=warning", "alertname=DiskWillFillIn24h"], "email-ops"),
        (["severity=none", "alertname=Watchdog"], "heartbeat"),
        (["severity=info", "alertname=Something"], "null"),
        (["alertname=Unlabelled"], "email-ops"),
    ],
)
def test_routes_by_severity(labels: list[str], receiver: str) -> None:
    out = run([tool("amtool"), "config", "routes", "test", f"--config.file={CONFIG}", *labels])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == receiver


def test_grouping_and_inhibition() -> None:
    doc = yaml.safe_load(CONFIG.read_text())
    assert doc["route"]["group_by"] == ["alertname", "instance"]
    inhibits = doc["inhibit_rules"]
    assert any(
        r["source_matchers"] == ['severity="critical"']
        and r["target_matchers"] == ['severity="warning"']
        for r in inhibits
    )


def test_smtp_credentials_are_not_inline() -> None:
    glob = yaml.safe_load(CONFIG.read_text())["global"]
    assert glob["smtp_auth_username"] == "${SMTP_AUTH_USERNAME}"
    assert glob["smtp_auth_password"] == "${SMTP_AUTH_PASSWORD}"
    # and the sops template in modules/secrets.nix defines exactly those variables
    secrets_nix = (MONITORING.parent / "secrets.nix").read_text()
    assert "SMTP_AUTH_USERNAME=" in secrets_nix and "SMTP_AUTH_PASSWORD=" in secrets_nix


def test_injected_unknown_receiver_fails_check(tmp_path: Path) -> None:
    bad = tmp_path / "am.yml"
    bad.write_text(CONFIG.read_text().replace("receiver: page-oncall", "receiver: nobody"))
    out = run([tool("amtool"), "check-config", bad])
    assert out.returncode != 0
