"""bench/cognition_common.py: the inference environment the cognition benchmarks start
``emily serve inference`` with loads into the service's own configuration."""

from __future__ import annotations

from pathlib import Path

from emily.bus import BusConfig
from emily.config import load_section
from emily.inference.config import InferenceConfig
from tests.bench.helpers import bench_module

cc = bench_module("cognition_common")


def test_the_inference_env_is_the_bundled_model_on_two_threads_and_a_free_port(
    tmp_path: Path, llm_model_path: Path
) -> None:
    env = cc.inference_env(
        "tcp/127.0.0.1:17447",
        "bench",
        tmp_path / "state",
        llm_model_path.parent,  # the assembled model is verified and reused there
        ("tcp/127.0.0.1:17448",),
        n_ctx=2048,
        max_tokens=48,
    )
    cfg = load_section(InferenceConfig, "inference", data={}, environ=env)
    assert cfg.model_path == llm_model_path
    assert (cfg.n_ctx, cfg.max_tokens, cfg.n_threads) == (2048, 48, 2)
    assert cfg.http_port not in (0, InferenceConfig.http_port)
    bus = load_section(BusConfig, "bus", data={}, environ=env)
    assert (bus.node, bus.listen, bus.connect) == (
        "bench",
        ("tcp/127.0.0.1:17447",),
        ("tcp/127.0.0.1:17448",),
    )
    assert env["EMILY_STATE_DIR"] == str(tmp_path / "state")


def test_the_defaults_are_a_short_context_and_short_replies(
    tmp_path: Path, llm_model_path: Path
) -> None:
    env = cc.inference_env("tcp/127.0.0.1:17447", "bench", tmp_path, llm_model_path.parent)
    cfg = load_section(InferenceConfig, "inference", data={}, environ=env)
    assert (cfg.n_ctx, cfg.max_tokens) == (1024, 16)
    assert load_section(BusConfig, "bus", data={}, environ=env).connect == ()
