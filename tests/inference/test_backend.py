"""Backend detection, and the CUDA path (skipped cleanly without a GPU build and device)."""

from __future__ import annotations

import shutil
from pathlib import Path

import llama_cpp
import pytest

from emily.bus.schemas.inference import GenerateRequest
from emily.inference.backend import compiled_gpu_backend, cpu_name, cuda_device, detect
from emily.inference.config import InferenceConfig
from emily.inference.engine import Engine
from emily.inference.metrics import InferenceMetrics
from emily.inference.scheduler import Done, EventQueue, Piece, Scheduler

HAS_CUDA = bool(llama_cpp.llama_supports_gpu_offload()) and cuda_device() is not None


def test_cpu_only_build_reports_cpu_whatever_the_layers() -> None:
    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this llama.cpp build can offload; the CPU-only case does not apply")
    for layers in (0, -1, 20):
        info = detect(layers)
        assert info.backend == "cpu" and not info.gpu_offload_supported
        assert "CPU-only build" in info.describe()
        assert info.device == cpu_name()


def test_zero_layers_is_cpu_even_on_a_gpu_build() -> None:
    assert detect(0).backend == "cpu"


def test_system_info_names_the_compiled_backend() -> None:
    assert compiled_gpu_backend("CUDA : ARCHS = 610 | USE_GRAPHS = 1 | CPU : AVX2 = 1") == "cuda"
    assert compiled_gpu_backend("Metal : EMBED_LIBRARY = 1") == "metal"
    assert compiled_gpu_backend("CPU : AVX2 = 1") == "other"


def test_cuda_device_is_none_without_a_driver() -> None:
    if shutil.which("nvidia-smi"):
        assert cuda_device() is None or "(sm_" in str(cuda_device())
    else:
        assert cuda_device() is None


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA build of llama-cpp-python and a GPU")
def test_full_offload_runs_on_cuda(llm_model_path: Path) -> None:
    cfg = InferenceConfig(model_path=llm_model_path, n_gpu_layers=-1, n_ctx=512)
    engine = Engine(cfg, llm_model_path)
    assert engine.backend.backend == "cuda" and "(sm_" in engine.backend.device
    scheduler = Scheduler(engine, cfg, InferenceMetrics())
    try:
        events = EventQueue()
        plan = engine.plan("Hello", GenerateRequest(prompt="x", max_tokens=8, ignore_eos=True))
        scheduler.submit(plan, events)
        seen = list(events)
    finally:
        scheduler.close()
    done = seen[-1]
    assert isinstance(done, Done) and done.completion_tokens == 8
    assert "".join(e.text for e in seen if isinstance(e, Piece))


@pytest.mark.slow
@pytest.mark.skipif(
    bool(llama_cpp.llama_supports_gpu_offload()), reason="checks the CPU-only build's warning"
)
def test_asking_for_gpu_layers_on_a_cpu_build_warns_loudly(
    llm_model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = InferenceConfig(n_gpu_layers=-1, n_ctx=256, n_threads=1)
    with caplog.at_level("WARNING", logger="emily.inference.engine"):
        engine = Engine(cfg, llm_model_path)
    assert engine.backend.backend == "cpu"
    assert "cannot offload: running on the CPU" in caplog.text
