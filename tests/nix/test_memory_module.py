"""services.emily.memory's HTTP API options: what the unit's environment carries loads
into :class:`MemoryConfig`, and (with a nixpkgs lib at hand) the module evaluates with
``lib.evalModules``, its sops secret and its assertions included.

The module evaluation needs a checkout of nixpkgs' ``lib/`` (``EMILY_NIXPKGS_LIB``) and
optionally of sops-nix (``EMILY_SOPS_NIX``); neither ships with this repository, so
without them those cases are skipped with the reason."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from emily.config import load_section
from emily.memory.config import MemoryConfig
from tests.nix.nixeval import nix_eval

LIB = os.environ.get("EMILY_NIXPKGS_LIB", "")
SOPS = os.environ.get("EMILY_SOPS_NIX", "")
needs_lib = pytest.mark.skipif(
    not (LIB and (Path(LIB) / "default.nix").is_file()),
    reason="set EMILY_NIXPKGS_LIB to a nixpkgs lib/ directory to evaluate the module",
)
needs_sops = pytest.mark.skipif(
    not (SOPS and (Path(SOPS) / "modules" / "sops").is_dir()),
    reason="set EMILY_SOPS_NIX to a sops-nix checkout to evaluate the sops secret",
)


def evaluate(memory: str = "{ }", sops: bool = False) -> dict[str, Any]:
    args = f"nixpkgsLib = {Path(LIB).resolve()}; memory = {memory};"
    if sops:
        args += f" sopsNix = {Path(SOPS).resolve()};"
    got: dict[str, Any] = nix_eval(f"import ./tests/nix/memory_module_eval.nix {{ {args} }}")
    return got


def test_the_http_settings_the_module_renders_load_into_memory_config() -> None:
    env = nix_eval(
        "(import ./modules/lib/settings.nix).serviceEnv {"
        ' service = "memory"; node = "cloudlab"; router = "tcp/127.0.0.1:7447";'
        ' settings = { http_port = 8463; http_addr = "127.0.0.1";'
        ' http_max_body_bytes = 8388608; api_key_file = "/run/secrets/memory/api-key"; }; }'
    )
    cfg = load_section(MemoryConfig, "memory", data={}, environ=env)
    assert (cfg.http_port, cfg.http_addr, cfg.http_max_body_bytes) == (8463, "127.0.0.1", 8 << 20)
    assert cfg.api_key_file == Path("/run/secrets/memory/api-key")


@needs_lib
def test_defaults_serve_loopback_8463_without_a_token() -> None:
    got = evaluate()
    assert got["failed"] == []
    env = got["env"]
    assert env["EMILY_MEMORY__HTTP_PORT"] == "8463"
    assert env["EMILY_MEMORY__HTTP_ADDR"] == "127.0.0.1"
    assert "EMILY_MEMORY__API_KEY_FILE" not in env
    cfg = load_section(MemoryConfig, "memory", data={}, environ=env)
    assert cfg.api_key_file is None and cfg.http_max_body_bytes == 8 << 20


@needs_lib
def test_a_token_file_and_another_address_reach_the_unit() -> None:
    got = evaluate(
        '{ apiKeyFile = "/etc/emily/memory.token"; port = 18463; listenAddress = "::1"; }'
    )
    cfg = load_section(MemoryConfig, "memory", data={}, environ=got["env"])
    assert (cfg.http_port, cfg.http_addr) == (18463, "::1")
    assert cfg.api_key_file == Path("/etc/emily/memory.token")


@needs_lib
def test_a_secret_without_sops_nix_and_a_shared_port_are_assertion_failures() -> None:
    assert evaluate('{ apiKeySecret = "memory/api-key"; }')["failed"] == [
        "services.emily.memory.apiKeySecret needs sops-nix: add sops-nix.nixosModules.sops."
    ]
    assert evaluate("{ port = 9461; }")["failed"] == [
        "services.emily.memory.port and metricsPort must differ."
    ]


@needs_lib
def test_a_port_out_of_range_is_a_type_error() -> None:
    with pytest.raises(RuntimeError, match=r"services\.emily\.memory\.port' is not of type"):
        evaluate("{ port = 70000; }")


@needs_lib
@needs_sops
def test_the_sops_secret_is_the_units_token_file() -> None:
    got = evaluate('{ apiKeySecret = "memory/api-key"; }', sops=True)
    assert got["failed"] == [], json.dumps(got)
    secret = got["secrets"]["memory/api-key"]
    assert secret["owner"] == got["user"] == "emily"
    assert secret["restartUnits"] == ["emily-memory.service"]
    assert got["env"]["EMILY_MEMORY__API_KEY_FILE"] == secret["path"]
