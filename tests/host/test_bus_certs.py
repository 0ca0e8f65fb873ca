"""hosts/cloudlab/bus-certs.sh: the certificates it writes into sops chain to its CA,
carry the names the zenohd access control expects, and a second run rotates them all
(the old ones no longer verify). Run against a scratch copy of the sops setup with the
test-only key; plus the error paths."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.host.tools import SECRETS, TEST_KEY, run, tool

SCRIPT = REPO / "hosts" / "cloudlab" / "bus-certs.sh"
NODES = ("cloudlab=IP:127.0.0.1,IP:10.99.0.1", "store=IP:10.99.0.2")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "secrets").mkdir()
    shutil.copy(REPO / ".sops.yaml", tmp_path / ".sops.yaml")
    shutil.copy(SECRETS / "test.yaml", tmp_path / "secrets" / "test.yaml")
    return tmp_path


def certs(*args: str | Path, repo: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {"EMILY_REPO_ROOT": str(repo), "SOPS_AGE_KEY_FILE": str(TEST_KEY), "SOPS": tool("sops")}
    return run(["bash", SCRIPT, *args], env=env)


def zenoh_secrets(repo: Path) -> dict[str, object]:
    out = run(
        [tool("sops"), "decrypt", repo / "secrets" / "test.yaml"],
        env={"SOPS_AGE_KEY_FILE": str(TEST_KEY)},
    )
    assert out.returncode == 0, out.stderr
    doc = yaml.safe_load(out.stdout)["zenoh"]
    assert isinstance(doc, dict)
    return doc


def openssl(*args: str | Path, stdin: str | None = None) -> str:
    out = run(["openssl", *args], stdin=stdin)
    assert out.returncode == 0, out.stderr
    return out.stdout


def verifies(ca_pem: str, cert_pem: str, tmp: Path) -> bool:
    (tmp / "ca.pem").write_text(ca_pem)
    (tmp / "cert.pem").write_text(cert_pem)
    return run(["openssl", "verify", "-CAfile", tmp / "ca.pem", tmp / "cert.pem"]).returncode == 0


def test_sops_writes_a_ca_and_every_certificate(repo: Path, tmp_path: Path) -> None:
    out = certs("sops", "secrets/test.yaml", *NODES, repo=repo)
    assert out.returncode == 0, out.stderr
    z = zenoh_secrets(repo)
    ca = z["ca-certificate"]
    assert isinstance(ca, str) and "BEGIN CERTIFICATE" in ca
    assert "PRIVATE KEY" in str(z["ca-private-key"])
    for subject, cn in [
        ("router-cloudlab", "router"),
        ("router-store", "router"),
        ("memory", "memory"),
        ("inference", "inference"),
        ("cognition", "cognition"),
        ("cli", "cli"),
    ]:
        entry = z[subject]
        assert isinstance(entry, dict), subject
        assert verifies(ca, entry["certificate"], tmp_path), subject
        subject_line = openssl("x509", "-noout", "-subject", stdin=entry["certificate"])
        assert subject_line.strip().endswith(f"CN = {cn}"), subject_line
        # the key belongs to the certificate
        pub_cert = openssl("x509", "-noout", "-pubkey", stdin=entry["certificate"])
        pub_key = openssl("pkey", "-pubout", stdin=entry["private-key"])
        assert pub_cert == pub_key, subject
    router = z["router-cloudlab"]
    assert isinstance(router, dict)
    text = openssl("x509", "-noout", "-ext", "subjectAltName", stdin=router["certificate"])
    assert "DNS:cloudlab" in text and "IP Address:10.99.0.1" in text
    assert text.count("IP Address:127.0.0.1") == 1
    # loopback is added to a router even when not given
    store = z["router-store"]
    assert isinstance(store, dict)
    text = openssl("x509", "-noout", "-ext", "subjectAltName", stdin=store["certificate"])
    assert "IP Address:127.0.0.1" in text and "IP Address:10.99.0.2" in text


def test_a_second_run_rotates_the_ca(repo: Path, tmp_path: Path) -> None:
    assert certs("sops", "secrets/test.yaml", *NODES, repo=repo).returncode == 0
    before = zenoh_secrets(repo)
    assert certs("sops", "secrets/test.yaml", *NODES, repo=repo).returncode == 0
    after = zenoh_secrets(repo)
    assert after["ca-certificate"] != before["ca-certificate"]
    old_memory = before["memory"]
    assert isinstance(old_memory, dict)
    assert not verifies(str(after["ca-certificate"]), old_memory["certificate"], tmp_path)


def test_a_certificate_of_another_ca_does_not_verify(tmp_path: Path) -> None:
    for ca in ("a", "b"):
        assert certs("ca", tmp_path / ca).returncode == 0
    assert certs("issue", tmp_path / "a", "memory").returncode == 0
    ca_b = (tmp_path / "b" / "ca.crt").read_text()
    cert_a = (tmp_path / "a" / "memory.crt").read_text()
    assert not verifies(ca_b, cert_a, tmp_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("issue", "DIR", "bad name"), "must match"),
        (("issue", "DIR", "memory", "URI:x"), "SAN 'URI:x'"),
        (("sops", "secrets/test.yaml", "cloudlab"), "is not NODE=SAN"),
        (("frobnicate",), "unknown command"),
    ],
)
def test_bad_input_is_refused(
    repo: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    assert certs("ca", tmp_path / "ca").returncode == 0
    argv = [str(tmp_path / "ca") if a == "DIR" else a for a in args]
    before = (repo / "secrets" / "test.yaml").read_bytes()
    out = certs(*argv, repo=repo)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    # a refused command writes nothing
    assert (repo / "secrets" / "test.yaml").read_bytes() == before


def test_an_existing_ca_is_never_replaced(tmp_path: Path) -> None:
    assert certs("ca", tmp_path).returncode == 0
    out = certs("ca", tmp_path)
    assert out.returncode == 2 and "refusing to replace" in out.stderr


def test_the_vm_tests_certificates_chain_to_their_ca(tmp_path: Path) -> None:
    # secrets/test.yaml's bus certificates, which the VM tests' routers and services use
    z = zenoh_secrets(REPO)
    ca = str(z["ca-certificate"])
    for subject in ("router-cloudlab", "router-store", "memory", "inference", "cognition", "cli"):
        entry = z[subject]
        assert isinstance(entry, dict), subject
        assert verifies(ca, entry["certificate"], tmp_path), subject
        pub_cert = openssl("x509", "-noout", "-pubkey", stdin=entry["certificate"])
        assert pub_cert == openssl("pkey", "-pubout", stdin=entry["private-key"]), subject
