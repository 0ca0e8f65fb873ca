"""sops secrets: nothing in plaintext, test.yaml decrypts with the test-only key, the
host file is encrypted to the admin and the (placeholder) host recipient, and every
secret the modules use exists in both files."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.host.secret_scan import (
    ALLOWED,
    Finding,
    scan_repo,
    scan_text,
    unencrypted_sops_values,
)
from tests.host.tools import SECRETS, TEST_KEY, run, tool

SOPS_CONFIG = yaml.safe_load((REPO / ".sops.yaml").read_text())


def recipients(anchor_comment_free: str) -> str:
    """The age recipient listed after ``&<anchor>`` in .sops.yaml."""
    text = (REPO / ".sops.yaml").read_text()
    m = re.search(rf"&{anchor_comment_free} (age1[0-9a-z]+)", text)
    assert m, anchor_comment_free
    return m[1]


def decrypt(path: Path, key: Path = TEST_KEY) -> subprocess.CompletedProcess[str]:
    return run([tool("sops"), "decrypt", path], env={"SOPS_AGE_KEY_FILE": str(key)})


def test_no_plaintext_secret_is_committed() -> None:
    assert scan_repo() == []


def test_only_the_test_key_is_allowed() -> None:
    assert {"secrets/test-only-age-key.txt"} == ALLOWED
    header = TEST_KEY.read_text().splitlines()[0]
    assert "TEST-ONLY" in header and "VM tests" in header


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("AGE-SECRET-KEY-1" + "Q" * 58, "age private key"),
        ("-----BEGIN OPENSSH " + "PRIVATE KEY-----\nabc", "PEM/OpenSSH private key"),
        ("PrivateKey = " + "A" * 43 + "=", "WireGuard private key in config"),
        ('smtp_auth_password: "hunter2' + 'hunter2hunter2"', "inline password"),
        ("key = AKIA" + "ABCDEFGHIJKLMNOP", "AWS access key id"),
    ],
)
def test_injected_plaintext_secret_is_found(text: str, kind: str) -> None:
    assert Finding("x", 1, kind) in scan_text("x", text)


@pytest.mark.parametrize(
    "text",
    [
        'smtp_auth_password: "${SMTP_AUTH_PASSWORD}"',
        "password: ENC[AES256_GCM,data:abc]",
        'admin_password = "$__file{/run/secrets/grafana}";',
        "passwordFile = lib.mkOption {",
    ],
)
def test_references_to_secrets_are_not_findings(text: str) -> None:
    assert scan_text("x", text) == []


def test_injected_unencrypted_sops_value_is_found(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("a:\n  b: ENC[AES256_GCM,data:x]\n  c: plain\nsops:\n  age: []\n")
    assert unencrypted_sops_values(f) == ["a/c"]


@pytest.mark.parametrize("name", ["cloudlab.yaml", "test.yaml"])
def test_every_value_is_encrypted(name: str) -> None:
    assert unencrypted_sops_values(SECRETS / name) == []


def test_test_yaml_decrypts_with_the_test_key() -> None:
    out = decrypt(SECRETS / "test.yaml")
    assert out.returncode == 0, out.stderr
    doc = yaml.safe_load(out.stdout)
    assert set(doc) == {"wireguard", "postgres", "alertmanager", "grafana", "restic", "zenoh"}
    assert set(doc["wireguard"]) == {"private-key", "peer-private-key"}
    for key in doc["wireguard"].values():
        assert re.fullmatch(r"[A-Za-z0-9+/]{43}=", key)
    assert set(doc["restic"]) == {"password", "s3-access-key-id", "s3-secret-access-key"}
    assert all(len(v) >= 16 for v in doc["postgres"].values())
    # the bus certificates of the VM tests (hosts/cloudlab/bus-certs.sh sops)
    z = doc["zenoh"]
    assert {"ca-certificate", "router-cloudlab", "router-store", "memory", "cognition"} <= set(z)
    assert set(z["memory"]) == {"certificate", "private-key"}


def test_host_file_is_not_readable_with_the_test_key() -> None:
    out = decrypt(SECRETS / "cloudlab.yaml")
    assert out.returncode != 0


def test_wrong_key_cannot_decrypt(tmp_path: Path) -> None:
    other = tmp_path / "other.txt"
    assert run([tool("age-keygen"), "-o", other]).returncode == 0
    assert decrypt(SECRETS / "test.yaml", other).returncode != 0


def file_recipients(name: str) -> set[str]:
    doc = yaml.safe_load((SECRETS / name).read_text())
    return {entry["recipient"] for entry in doc["sops"]["age"]}


def test_recipients_follow_sops_yaml() -> None:
    assert file_recipients("test.yaml") == {recipients("test_only")}
    assert file_recipients("cloudlab.yaml") == {
        recipients("admin"),
        recipients("host_cloudlab_placeholder"),
    }
    # the test key's public half is the test-only recipient
    assert f"public key: {recipients('test_only')}" in TEST_KEY.read_text()


def secrets_used_by_modules() -> set[str]:
    text = (REPO / "modules" / "secrets.nix").read_text()
    return (
        set(re.findall(r'(?:secrets|secret|ph) "([a-z0-9-]+/[a-z0-9-]+)"', text))
        | set(re.findall(r'sops\.secrets\."([a-z0-9-]+/[a-z0-9-]+)"', text))
        | set(re.findall(r'^\s+"([a-z0-9-]+/[a-z0-9-]+)" = ', text, re.MULTILINE))
    )


def keys_of(name: str) -> set[str]:
    """Secret names (a/b) of a sops file: its key structure is plaintext by design."""
    doc = yaml.safe_load((SECRETS / name).read_text())
    return {f"{a}/{b}" for a, inner in doc.items() if a != "sops" for b in inner}


def test_every_secret_the_modules_use_exists() -> None:
    used = secrets_used_by_modules()
    assert used == {
        "wireguard/private-key",
        "postgres/emily-password",
        "grafana/admin-password",
        "grafana/secret-key",
        "alertmanager/smtp-username",
        "alertmanager/smtp-password",
        "restic/password",
        "restic/s3-access-key-id",
        "restic/s3-secret-access-key",
        "zenoh/ca-certificate",
    }
    # zenoh/<subject>/{certificate,private-key} (three parts) of the routers, the services
    # and the CLI: the module names them from the node and the enabled services
    bus = {"zenoh/ca-certificate", "zenoh/cli", "zenoh/router-cloudlab"} | {
        f"zenoh/{s}" for s in ("memory", "inference", "cognition")
    }
    assert bus <= keys_of("test.yaml")
    flat = {n for n in used if not n.startswith("zenoh/")}
    for name in ("cloudlab.yaml", "test.yaml"):
        missing = flat - keys_of(name)
        assert not missing, f"{name} lacks {sorted(missing)}"
    # the host's bus certificates are made at the first install (bus-certs.sh sops
    # secrets/cloudlab.yaml ...): that needs the administrator's age key
    assert "bus-certs.sh sops secrets/cloudlab.yaml" in (REPO / "docs" / "host.md").read_text()


def test_creation_rules_cover_both_files() -> None:
    regexes = [r["path_regex"] for r in SOPS_CONFIG["creation_rules"]]
    for name in ("secrets/test.yaml", "secrets/cloudlab.yaml"):
        assert sum(bool(re.search(rx, name)) for rx in regexes) == 1, name


def test_scan_works_without_git(tmp_path: Path) -> None:
    """The Nix sandbox has no .git: the scan walks the tree and still finds a leak."""
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "test-only-age-key.txt").write_text("AGE-SECRET-KEY-1" + "Q" * 58)
    (tmp_path / "leak.txt").write_text("AGE-SECRET-KEY-1" + "Z" * 58)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "ignored.txt").write_text("AGE-SECRET-KEY-1" + "Z" * 58)
    assert scan_repo(tmp_path) == [Finding("leak.txt", 1, "age private key")]
