"""services.emily.memory's own HTTP options: what the unit's environment carries loads
into :class:`MemoryConfig`, and (with a nixpkgs lib at hand) the body limit and the
port kept apart from /metrics. The options memory shares with inference (port, address,
token file, sops secret) are tested in tests/nix/test_http_api.py."""

from __future__ import annotations

from pathlib import Path

from emily.config import load_section
from emily.memory.config import MemoryConfig
from tests.nix.nixeval import evaluate_service, needs_lib, nix_eval


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
def test_the_body_limit_defaults_to_8_mib_and_reaches_the_unit() -> None:
    assert evaluate_service("memory")["env"]["EMILY_MEMORY__HTTP_MAX_BODY_BYTES"] == "8388608"
    env = evaluate_service("memory", "{ maxBodyBytes = 1024; }")["env"]
    assert load_section(MemoryConfig, "memory", data={}, environ=env).http_max_body_bytes == 1024


@needs_lib
def test_a_port_shared_with_metrics_is_an_assertion_failure() -> None:
    assert evaluate_service("memory", "{ port = 9461; }")["failed"] == [
        "services.emily.memory.port and metricsPort must differ."
    ]
    assert evaluate_service("memory", "{ port = 0; metricsPort = 0; }")["failed"] == []
