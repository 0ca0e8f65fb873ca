"""The service's collectors: names, prefix, and the backend info labels."""

from __future__ import annotations

from prometheus_client import generate_latest

from emily.inference.backend import BackendInfo
from emily.inference.metrics import InferenceMetrics


def test_every_metric_is_prefixed_and_registries_are_separate() -> None:
    a, b = InferenceMetrics(), InferenceMetrics()  # no collision between two services
    a.generated_tokens.inc(5)
    a.rejections.labels("busy").inc()
    page = generate_latest(a.registry).decode()
    names = {line.split(" ")[2] for line in page.splitlines() if line.startswith("# TYPE ")}
    assert names and all(n.startswith(("emily_inference_", "process_")) for n in names)
    assert {"emily_inference_ttft_seconds", "emily_inference_latency_seconds"} <= names
    assert 'emily_inference_rejections_total{reason="busy"} 1.0' in page
    assert "emily_inference_generated_tokens_total 5.0" in page
    assert "emily_inference_generated_tokens_total 0.0" in generate_latest(b.registry).decode()


def test_backend_info_carries_device_and_model() -> None:
    m = InferenceMetrics()
    m.set_backend(BackendInfo("cuda", "Tesla P4 (sm_61)", True, "CUDA : ARCHS = 610"), "g4b", -1)
    page = generate_latest(m.registry).decode()
    line = next(x for x in page.splitlines() if x.startswith("emily_inference_backend_info{"))
    for label in (
        'backend="cuda"',
        'device="Tesla P4 (sm_61)"',
        'model="g4b"',
        'n_gpu_layers="-1"',
        'gpu_offload_supported="true"',
    ):
        assert label in line, line
