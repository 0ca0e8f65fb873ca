"""``[inference]`` settings: defaults, validation, TOML and environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emily.config import load_section
from emily.errors import ConfigError
from emily.inference.config import InferenceConfig, default_threads


def test_defaults_use_every_core_and_the_documented_port() -> None:
    cfg = InferenceConfig()
    assert cfg.threads == len(os.sched_getaffinity(0)) == default_threads()
    assert cfg.threads_batch == cfg.threads
    assert cfg.http_port == 8461 and cfg.model_path is None and cfg.n_gpu_layers == 0


def test_env_and_toml_override_defaults(tmp_path: Path) -> None:
    data = {"inference": {"n_ctx": 2048, "model_path": str(tmp_path / "m.gguf")}}
    env = {"EMILY_INFERENCE__N_GPU_LAYERS": "-1", "EMILY_INFERENCE__CHAT_FORMAT": "fewshot"}
    cfg = load_section(InferenceConfig, "inference", data, env)
    assert cfg.n_ctx == 2048 and cfg.model_path == tmp_path / "m.gguf"
    assert cfg.n_gpu_layers == -1 and cfg.chat_format == "fewshot"
    assert InferenceConfig(n_threads=3, n_threads_batch=0).threads_batch == 3


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("n_ctx", 8, "n_ctx"),
        ("n_gpu_layers", -2, "n_gpu_layers"),
        ("max_tokens", 10**6, "max_tokens"),
        ("temperature", 3.0, "temperature"),
        ("top_p", 0.0, "top_p"),
        ("queue_size", -1, "queue_size"),
        ("queue_timeout_s", 0.0, "timeouts"),
        ("http_port", 70000, "port"),
    ],
)
def test_invalid_settings_are_config_errors(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        InferenceConfig(**{field: value})  # type: ignore[arg-type]


def test_unknown_and_malformed_keys_are_reported() -> None:
    with pytest.raises(ConfigError, match="unknown keys"):
        load_section(InferenceConfig, "inference", {"inference": {"n_gpu": 1}}, {})
    with pytest.raises(ConfigError, match="chat_format"):
        load_section(InferenceConfig, "inference", {}, {"EMILY_INFERENCE__CHAT_FORMAT": "x"})
