"""modules/lib/settings.nix renders settings that the real emily.config loader parses
back into the same values (``nix eval``, then ``load_section`` on the result)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from emily.bus.session import BusConfig
from emily.cognition.config import CognitionConfig
from emily.config import load_section
from emily.errors import ConfigError
from emily.memory.config import MemoryConfig
from emily.perception.config import PerceptionConfig
from tests.nix.nixeval import nix_eval

HELPER = "import ./modules/lib/settings.nix"


def rendered(section: str, settings: dict[str, Any]) -> dict[str, str]:
    """``env section settings`` evaluated by nix, from the settings given as JSON."""
    literal = json.dumps(json.dumps(settings)).replace("${", "\\${")
    got = nix_eval(f'({HELPER}).env "{section}" (builtins.fromJSON {literal})')
    assert isinstance(got, dict) and all(isinstance(v, str) for v in got.values())
    return got


# What the host's service modules pass: every kind of value the renderer handles.
CASES: list[tuple[type[Any], str, dict[str, Any]]] = [
    (
        CognitionConfig,
        "cognition",
        {
            "stochastic": False,
            "embeddings": True,
            "recall_timeout_s": 0.5,
            "deliberate_timeout_s": 60,
            "capacity": 7,
            "http_addr": "127.0.0.1",
            "memory_node": "store1",
            "inference_node": "",
        },
    ),
    (
        BusConfig,
        "bus",
        {
            "mode": "client",
            "node": "cloudlab",
            "connect": ["tls/127.0.0.1:7447"],
            "listen": [],
            "multicast_scouting": False,
            "timeout_s": 10,
            "tls_root_ca": "/run/secrets/zenoh/ca-certificate",
            "tls_certificate": "/run/secrets/zenoh/cognition/certificate",
            "tls_private_key": "/run/secrets/zenoh/cognition/private-key",
        },
    ),
    (
        MemoryConfig,
        "memory",
        {"dsn": "postgresql:///emily?host=/run/postgresql", "metrics_port": 9461},
    ),
    (
        PerceptionConfig,
        "perception",
        {
            "model_dir": "/nix/store/0000-whisper-tiny.en-ct2-0.1.0",
            "model_name": "whisper-tiny.en",
            "device": "cuda",
            "compute_type": "int8",
            "tesseract": "/nix/store/0000-tesseract/bin/tesseract",
            "ocr_lang": "eng",
            "metrics_port": 9463,
            "metrics_addr": "127.0.0.1",
        },
    ),
]


@pytest.mark.parametrize(("cls", "section", "settings"), CASES, ids=[c[1] for c in CASES])
def test_loader_reads_back_what_nix_rendered(
    cls: type[Any], section: str, settings: dict[str, Any]
) -> None:
    env = rendered(section, settings)
    assert set(env) == {f"EMILY_{section.upper()}__{k.upper()}" for k in settings}
    loaded = load_section(cls, section, data={}, environ=env)
    for key, want in settings.items():
        got = getattr(loaded, key)
        if isinstance(want, list):
            want = tuple(want)
        assert got == want, (key, got)
        if isinstance(want, bool):
            assert got is want, key


def test_integer_given_to_a_float_field_is_a_float() -> None:
    loaded = load_section(
        CognitionConfig,
        "cognition",
        data={},
        environ=rendered("cognition", {"recall_timeout_s": 2}),
    )
    assert loaded.recall_timeout_s == 2.0 and isinstance(loaded.recall_timeout_s, float)


def test_toString_rendering_would_be_rejected() -> None:
    # the rendering this helper replaces: `toString false` is "", which the loader refuses
    assert nix_eval("toString false") == ""
    with pytest.raises(ConfigError, match="expected true/false"):
        load_section(
            CognitionConfig, "cognition", data={}, environ={"EMILY_COGNITION__STOCHASTIC": ""}
        )


def test_unknown_field_is_caught_by_the_loader() -> None:
    env = rendered("cognition", {"stochastc": True})
    with pytest.raises(ConfigError, match="no setting 'stochastc'"):
        load_section(CognitionConfig, "cognition", data={}, environ=env)


def test_bad_key_is_an_error_in_nix() -> None:
    with pytest.raises(RuntimeError, match="lower_snake_case"):
        rendered("cognition", {"Recall-K": 3})


def test_a_service_units_environment_loads() -> None:
    # exactly what modules/services/unit.nix puts in a unit's environment
    env = nix_eval(
        "(import ./modules/lib/settings.nix).serviceEnv {"
        ' service = "cognition"; node = "cloudlab"; router = "tls/127.0.0.1:7447";'
        ' tls = { rootCa = "/run/secrets/zenoh/ca-certificate";'
        ' certificate = "/run/secrets/zenoh/cognition/certificate";'
        ' privateKey = "/run/secrets/zenoh/cognition/private-key"; };'
        ' settings = { stochastic = false; memory_node = "store"; capacity = 7; }; }'
    )
    bus = load_section(BusConfig, "bus", data={}, environ=env)
    assert (bus.mode, bus.node, bus.connect, bus.listen) == (
        "client",
        "cloudlab",
        ("tls/127.0.0.1:7447",),
        (),
    )
    assert bus.tls_root_ca == "/run/secrets/zenoh/ca-certificate"
    assert bus.tls_private_key.endswith("cognition/private-key")
    cognition = load_section(CognitionConfig, "cognition", data={}, environ=env)
    assert cognition.stochastic is False and cognition.memory_node == "store"
    assert cognition.capacity == 7 and cognition.inference_node == ""


def test_without_tls_the_bus_has_no_certificate_settings() -> None:
    env = nix_eval(
        "(import ./modules/lib/settings.nix).serviceEnv {"
        ' service = "memory"; node = "vm"; router = "tcp/127.0.0.1:7447"; }'
    )
    assert not any(k.startswith("EMILY_BUS__TLS") for k in env)
    assert load_section(BusConfig, "bus", data={}, environ=env).tls_root_ca == ""
