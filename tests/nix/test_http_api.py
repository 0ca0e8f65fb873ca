"""The HTTP options of modules/services/lib/http-api.nix, evaluated against a real
nixpkgs lib (``EMILY_NIXPKGS_LIB``; sops-nix from ``EMILY_SOPS_NIX``): the helper's own
declarations, and the service modules that use them, whose unit environment must load
into the service's own configuration class. Without those paths
the cases are skipped with the reason; the helper's token wiring, which needs no lib, is
tested in tests/nix/http_api_test.nix."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from emily.cognition.config import CognitionConfig
from emily.config import load_section
from emily.inference.config import InferenceConfig
from emily.memory.config import MemoryConfig
from emily.perception.config import PerceptionConfig
from tests.nix.nixeval import evaluate_service, needs_lib, needs_sops, nix_eval, nixpkgs_lib


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    user: str
    config: type[Any]
    address: str  # the config field the module's listenAddress becomes

    def load(self, env: dict[str, str]) -> Any:
        return load_section(self.config, self.name, data={}, environ=env)


MEMORY = Service("memory", 8463, "emily", MemoryConfig, "http_addr")
INFERENCE = Service("inference", 8461, "emily-inference", InferenceConfig, "http_host")
COGNITION = Service("cognition", 8462, "emily-cognition", CognitionConfig, "http_addr")
SERVICES = [MEMORY, INFERENCE, COGNITION]
by_name = pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)


def helper_options() -> dict[str, Any]:
    """The helper's options for a service `probe` on port 1234, alone in evalModules:
    their values with no definitions and the apiKeySecret example; with the metrics
    options for port 4321."""
    expr = f"""
      let
        lib = import {nixpkgs_lib()};
        http = import ./modules/services/lib/http-api.nix {{ inherit lib; }};
        eval = lib.evalModules {{
          modules = [ {{ options = http.options {{
            service = "probe"; port = 1234; portDescription = "Port of probe.";
          }}; }} ];
        }};
        metrics = lib.evalModules {{
          modules = [ {{ options = http.metrics {{ port = 4321; }}; }} ];
        }};
      in {{
        config = eval.config;
        example = eval.options.apiKeySecret.example or null;
        portDescription = eval.options.port.description;
        metrics = metrics.config;
      }}
    """
    got: dict[str, Any] = nix_eval(expr)
    return got


@needs_lib
def test_the_helper_declares_port_address_and_token_options() -> None:
    got = helper_options()
    assert got["config"] == {
        "port": 1234,
        "listenAddress": "127.0.0.1",
        "apiKeyFile": None,
        "apiKeySecret": None,
    }
    assert got["example"] == "probe/api-key"
    assert got["portDescription"] == "Port of probe."


@needs_lib
def test_the_helper_declares_a_metrics_port_and_address() -> None:
    assert helper_options()["metrics"] == {
        "metricsPort": 4321,
        "metricsAddress": "127.0.0.1",
    }


@needs_lib
@pytest.mark.parametrize(
    ("service", "config", "port"),
    [("memory", MemoryConfig, 9461), ("perception", PerceptionConfig, 9463)],
    ids=["memory", "perception"],
)
def test_the_metrics_server_defaults_to_loopback_and_moves_with_its_options(
    service: str, config: type[Any], port: int
) -> None:
    def load(cfg: str = "{ }") -> Any:
        return load_section(config, service, data={}, environ=evaluate_service(service, cfg)["env"])

    assert (load().metrics_port, load().metrics_addr) == (port, "127.0.0.1")
    moved = load('{ metricsPort = 19463; metricsAddress = "::1"; }')
    assert (moved.metrics_port, moved.metrics_addr) == (19463, "::1")
    with pytest.raises(RuntimeError, match=rf"services\.emily\.{service}\.metricsPort' is not"):
        load("{ metricsPort = 70000; }")


@needs_lib
@by_name
def test_defaults_serve_loopback_on_the_services_port_without_a_token(svc: Service) -> None:
    got = evaluate_service(svc.name)
    assert got["failed"] == []
    cfg = svc.load(got["env"])  # every variable the module renders is a known setting
    assert (cfg.http_port, getattr(cfg, svc.address)) == (svc.port, "127.0.0.1")
    assert cfg.api_key_file is None


@needs_lib
@by_name
def test_a_token_file_and_another_address_reach_the_unit(svc: Service) -> None:
    got = evaluate_service(
        svc.name, '{ apiKeyFile = "/etc/emily/api.token"; port = 18463; listenAddress = "::1"; }'
    )
    cfg = svc.load(got["env"])
    assert (cfg.http_port, getattr(cfg, svc.address)) == (18463, "::1")
    assert cfg.api_key_file == Path("/etc/emily/api.token")


@needs_lib
@by_name
def test_a_secret_without_sops_nix_is_an_assertion_failure(svc: Service) -> None:
    got = evaluate_service(svc.name, f'{{ apiKeySecret = "{svc.name}/api-key"; }}')
    message = (
        f"services.emily.{svc.name}.apiKeySecret needs sops-nix: add sops-nix.nixosModules.sops."
    )
    assert got["failed"] == [message]


@needs_lib
@by_name
def test_a_port_out_of_range_is_a_type_error(svc: Service) -> None:
    with pytest.raises(RuntimeError, match=rf"services\.emily\.{svc.name}\.port' is not of type"):
        evaluate_service(svc.name, "{ port = 70000; }")


@needs_lib
@needs_sops
@by_name
def test_the_sops_secret_is_the_units_token_file(svc: Service) -> None:
    secret_name = f"{svc.name}/api-key"
    got = evaluate_service(svc.name, f'{{ apiKeySecret = "{secret_name}"; }}', sops=True)
    assert got["failed"] == [], json.dumps(got)
    secret = got["secrets"][secret_name]
    assert secret["owner"] == got["user"] == svc.user
    assert secret["restartUnits"] == [f"emily-{svc.name}.service"]
    assert svc.load(got["env"]).api_key_file == Path(secret["path"])
