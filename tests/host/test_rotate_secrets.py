"""hosts/cloudlab/rotate-secrets.sh against a copy of the repo's sops setup and the
test-only key: set, generate, rekey (new data key), and a recipient swap with
updatekeys after which only the new key decrypts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.host.tools import SECRETS, TEST_KEY, run, tool

SCRIPT = REPO / "hosts" / "cloudlab" / "rotate-secrets.sh"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A scratch repository root holding .sops.yaml, secrets/test.yaml and the test key."""
    (tmp_path / "secrets").mkdir()
    shutil.copy(REPO / ".sops.yaml", tmp_path / ".sops.yaml")
    shutil.copy(SECRETS / "test.yaml", tmp_path / "secrets" / "test.yaml")
    return tmp_path


def rotate(
    repo: Path, *args: str, key: Path = TEST_KEY, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"EMILY_REPO_ROOT": str(repo), "SOPS_AGE_KEY_FILE": str(key), "SOPS": tool("sops")}
    return run(["bash", SCRIPT, *args], env=env, stdin=stdin)


def decrypted(repo: Path, key: Path = TEST_KEY) -> dict[str, dict[str, str]]:
    out = run(
        [tool("sops"), "decrypt", repo / "secrets" / "test.yaml"],
        env={"SOPS_AGE_KEY_FILE": str(key)},
    )
    assert out.returncode == 0, out.stderr
    doc = yaml.safe_load(out.stdout)
    assert isinstance(doc, dict)
    return doc


def test_set_changes_one_secret(repo: Path) -> None:
    before = decrypted(repo)
    out = rotate(
        repo, "set", "secrets/test.yaml", "grafana/admin-password", stdin='n3w "pw" \\ x\n'
    )
    assert out.returncode == 0, out.stderr
    after = decrypted(repo)
    assert after["grafana"]["admin-password"] == 'n3w "pw" \\ x'
    after["grafana"]["admin-password"] = before["grafana"]["admin-password"]
    assert after == before


def test_generate_makes_a_new_random_value(repo: Path) -> None:
    old = decrypted(repo)["restic"]["password"]
    assert rotate(repo, "generate", "secrets/test.yaml", "restic/password").returncode == 0
    new = decrypted(repo)["restic"]["password"]
    assert new != old and len(new) >= 40


def test_rekey_replaces_the_data_key_and_keeps_the_values(repo: Path) -> None:
    before_text = (repo / "secrets" / "test.yaml").read_text()
    before = decrypted(repo)
    out = rotate(repo, "rekey", "secrets/test.yaml")
    assert out.returncode == 0, out.stderr
    assert decrypted(repo) == before
    after_doc = yaml.safe_load((repo / "secrets" / "test.yaml").read_text())
    before_doc = yaml.safe_load(before_text)
    assert after_doc["wireguard"]["private-key"] != before_doc["wireguard"]["private-key"]
    assert after_doc["sops"]["age"][0]["enc"] != before_doc["sops"]["age"][0]["enc"]


def test_set_recipient_then_only_the_new_key_decrypts(repo: Path, tmp_path: Path) -> None:
    new_key = tmp_path / "new-key.txt"
    assert run([tool("age-keygen"), "-o", new_key]).returncode == 0
    recipient = next(
        line.split(": ")[1] for line in new_key.read_text().splitlines() if "public key" in line
    )
    before = decrypted(repo)
    # cloudlab.yaml is absent from the scratch repo, so only test.yaml is re-encrypted
    out = rotate(repo, "set-recipient", "test_only", recipient)
    assert out.returncode == 0, out.stderr
    assert f"&test_only {recipient}" in (repo / ".sops.yaml").read_text()
    assert decrypted(repo, new_key) == before
    old = run(
        [tool("sops"), "decrypt", repo / "secrets" / "test.yaml"],
        env={"SOPS_AGE_KEY_FILE": str(TEST_KEY)},
    )
    assert old.returncode != 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["set-recipient", "test_only", "age1tooshort"], "is not an age recipient"),
        (["set-recipient", "nobody", "age1" + "q" * 58], "no key anchored &nobody"),
        (["set", "secrets/test.yaml", "grafana/bad name"], "must match"),
        (["frobnicate"], "unknown command"),
        ([], "give a command"),
    ],
)
def test_bad_input_is_refused_with_a_reason(repo: Path, args: list[str], message: str) -> None:
    before = (repo / "secrets" / "test.yaml").read_text()
    out = rotate(repo, *args, stdin="x")
    assert out.returncode == 2 and message in out.stderr
    assert (repo / "secrets" / "test.yaml").read_text() == before


def test_empty_value_is_refused(repo: Path) -> None:
    out = rotate(repo, "set", "secrets/test.yaml", "grafana/admin-password", stdin="")
    assert out.returncode == 2 and "empty value" in out.stderr
