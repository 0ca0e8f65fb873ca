"""The VM tests (checks/*.nix) are wired into the flake checks, and the WireGuard public
keys they hard-code belong to the private keys in secrets/test.yaml."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.host.tools import SECRETS, TEST_KEY, run, tool
from tests.host.x25519 import wg_pubkey, x25519_base

VM_TESTS = ["zfs", "network", "monitoring", "secrets", "postgres", "backup"]


def test_rfc7748_vector() -> None:
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    assert x25519_base(alice).hex() == (
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    )


@pytest.mark.parametrize("name", VM_TESTS)
def test_each_module_has_its_vm_test_wired(name: str) -> None:
    text = (REPO / "checks" / f"{name}.nix").read_text()
    assert "pkgs.testers.runNixOSTest" in text and "testScript" in text
    default = (REPO / "checks" / "default.nix").read_text()
    assert re.search(rf"host-{name} = import \./{name}\.nix \{{", default), name


def test_hard_coded_public_keys_match_test_yaml() -> None:
    out = run(
        [tool("sops"), "decrypt", SECRETS / "test.yaml"], env={"SOPS_AGE_KEY_FILE": str(TEST_KEY)}
    )
    assert out.returncode == 0, out.stderr
    wg = yaml.safe_load(out.stdout)["wireguard"]
    host, laptop = wg_pubkey(wg["private-key"]), wg_pubkey(wg["peer-private-key"])
    network = (REPO / "checks" / "network.nix").read_text()
    assert f'hostPub = "{host}";' in network
    assert f'laptopPub = "{laptop}";' in network
    assert f'hostPub = "{host}";' in (REPO / "checks" / "secrets.nix").read_text()
    mesh = (REPO / "checks" / "bus-mesh.nix").read_text()
    assert f'cloudlabPub = "{host}";' in mesh and f'storePub = "{laptop}";' in mesh


def test_the_two_host_test_is_wired() -> None:
    default = (REPO / "checks" / "default.nix").read_text()
    assert "bus-mesh = import ./bus-mesh.nix { inherit pkgs sops-nix; };" in default


def test_a_wrong_key_gives_another_public_key() -> None:
    assert wg_pubkey("A" * 43 + "=") != wg_pubkey("B" * 43 + "=")


# Stage-1 shell hooks that systemd in stage 1 (the NixOS default) turns into
# assertion failures.
SCRIPTED_INITRD_HOOKS = re.compile(
    r"boot\.initrd\.(pre|post)(Device|Mount|LVM)Commands|boot\.initrd\.preFailCommands"
)


@pytest.mark.parametrize("path", sorted((REPO / "checks").rglob("*.nix")), ids=lambda p: p.name)
def test_no_scripted_initrd_hooks(path: Path) -> None:
    text = path.read_text()
    assert not SCRIPTED_INITRD_HOOKS.search(text), f"{path} uses a scripted-initrd hook"


def test_test_key_is_written_by_the_sops_unit() -> None:
    text = (REPO / "checks" / "lib" / "test-age-key.nix").read_text()
    assert "sops.useSystemdActivation = true;" in text
    assert "systemd.services.sops-install-secrets.preStart" in text


@pytest.mark.parametrize("path", sorted((REPO / "checks").glob("*.nix")), ids=lambda p: p.name)
def test_retry_uses_timeout_seconds(path: Path) -> None:
    # the driver's retry(fn, timeout_seconds=...) has no `timeout` keyword
    text = path.read_text()
    for call in re.findall(r"\bretry\(([^)]*)\)", text):
        assert "timeout=" not in call.replace("timeout_seconds=", ""), (path, call)
