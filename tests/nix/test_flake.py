"""flake.nix declares the agreed inputs, and flake.lock pins exactly the shared lock nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.nix.nixeval import nix_eval

SHARED_LOCK = REPO.parent / "shared" / "nix" / "lock-nodes.json"


def test_inputs() -> None:
    inputs = nix_eval("(import ./flake.nix).inputs")
    assert inputs["nixpkgs"] == {"url": "github:NixOS/nixpkgs/nixos-26.05"}
    for name, url in [
        ("sops-nix", "github:Mic92/sops-nix"),
        ("disko", "github:nix-community/disko"),
    ]:
        assert inputs[name] == {"url": url, "inputs": {"nixpkgs": {"follows": "nixpkgs"}}}


def test_lock_is_version_7_with_follows() -> None:
    lock = json.loads((REPO / "flake.lock").read_text())
    assert lock["version"] == 7 and lock["root"] == "root"
    assert lock["nodes"]["root"] == {
        "inputs": {"disko": "disko", "nixpkgs": "nixpkgs", "sops-nix": "sops-nix"}
    }
    assert lock["nodes"]["sops-nix"]["inputs"] == {"nixpkgs": ["nixpkgs"]}
    assert lock["nodes"]["disko"]["inputs"] == {"nixpkgs": ["nixpkgs"]}
    assert set(lock["nodes"]) == {"root", "nixpkgs", "sops-nix", "disko"}


@pytest.mark.skipif(not SHARED_LOCK.exists(), reason="../shared is not beside this checkout")
def test_lock_nodes_are_exactly_the_shared_ones() -> None:
    shared = json.loads(SHARED_LOCK.read_text())
    lock = json.loads((REPO / "flake.lock").read_text())
    for name in ("nixpkgs", "sops-nix", "disko"):
        assert lock["nodes"][name]["locked"] == shared[name]["locked"], name
        assert lock["nodes"][name]["original"] == shared[name]["original"], name


def test_lock_originals_agree_with_flake_inputs() -> None:
    lock = json.loads((REPO / "flake.lock").read_text())
    inputs = nix_eval("(import ./flake.nix).inputs")
    for name, node in lock["nodes"].items():
        if name == "root":
            continue
        o = node["original"]
        url = f"github:{o['owner']}/{o['repo']}" + (f"/{o['ref']}" if "ref" in o else "")
        assert inputs[name]["url"] == url


STUB_OUTPUTS = """
let
  flake = import ./flake.nix;
  # Stand-in inputs: just enough for the outputs' *shape* to evaluate without nixpkgs.
  # Only attribute names are forced, so no package is ever built or looked up.
  nixpkgs = { outPath = ./tests/nix/shape-nixpkgs.nix; lib.nixosSystem = args: args; };
  sops-nix = { nixosModules.sops = "sops"; };
  disko = { nixosModules.disko = "disko"; };
  outputs = flake.outputs { self = outputs; inherit nixpkgs sops-nix disko; };
in {
  top = builtins.attrNames outputs;
  packages = builtins.attrNames outputs.packages.x86_64-linux;
  devShells = builtins.attrNames outputs.devShells.x86_64-linux;
  checks = builtins.attrNames (import ./checks { pkgs = { lib = {}; }; });
  formatter = outputs.formatter.x86_64-linux;
  hostModules = builtins.length outputs.nixosConfigurations.cloudlab.modules;
  hosts = builtins.attrNames outputs.nixosConfigurations;
}
"""


def test_outputs_shape() -> None:
    got = nix_eval(STUB_OUTPUTS)
    assert set(got["top"]) == {
        "checks",
        "devShells",
        "formatter",
        "nixosConfigurations",
        "nixosModules",
        "overlays",
        "packages",
    }
    assert got["packages"] == ["default", "emily"]
    assert got["devShells"] == ["default"]
    assert {"lint", "nix-helpers", "pytest"} <= set(got["checks"])
    assert got["formatter"] == "nixfmt"
    assert got["hosts"] == ["cloudlab"] and got["hostModules"] == 5
    assert Path(REPO / ".envrc").read_text().strip() == "use flake"
