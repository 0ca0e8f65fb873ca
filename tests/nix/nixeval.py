"""Evaluating Nix expressions with the machine's nix-instantiate: pure ones (no nixpkgs
needed), and the service modules against a nixpkgs lib given in ``EMILY_NIXPKGS_LIB``
(sops-nix in ``EMILY_SOPS_NIX``); neither ships with this repository, so the tests that
need them are skipped with the reason."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

# the variables services/test-env.nix sets from the flake's inputs
LIB_ENV = "EMILY_NIXPKGS_LIB"
SOPS_ENV = "EMILY_SOPS_NIX"
LIB = os.environ.get(LIB_ENV, "")
SOPS = os.environ.get(SOPS_ENV, "")
needs_lib = pytest.mark.skipif(
    not (LIB and (Path(LIB) / "default.nix").is_file()),
    reason=f"set {LIB_ENV} to a nixpkgs lib/ directory to evaluate the module",
)
needs_sops = pytest.mark.skipif(
    not (SOPS and (Path(SOPS) / "modules" / "sops").is_dir()),
    reason=f"set {SOPS_ENV} to a sops-nix checkout to evaluate the sops secret",
)


def nix_eval(expr: str, cwd: Path = REPO) -> Any:
    """``nix-instantiate --eval --strict --json -E expr``, decoded; raises with stderr on error."""
    out = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expr],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout)


def nixpkgs_lib() -> str:
    """The nixpkgs lib of ``EMILY_NIXPKGS_LIB`` as a Nix path expression."""
    return str(Path(LIB).resolve())


def evaluate_service(service: str, cfg: str = "{ }", sops: bool = False) -> dict[str, Any]:
    """modules/services/<service>.nix enabled with ``cfg`` (a Nix attrset) through
    tests/nix/service_module_eval.nix: ``env`` (its EMILY_<SERVICE>__* variables),
    ``failed`` (assertion messages), ``secrets`` (with ``sops``) and ``user``."""
    args = f'nixpkgsLib = {nixpkgs_lib()}; service = "{service}"; cfg = {cfg};'
    if sops:
        args += f" sopsNix = {Path(SOPS).resolve()};"
    got: dict[str, Any] = nix_eval(f"import ./tests/nix/service_module_eval.nix {{ {args} }}")
    return got
