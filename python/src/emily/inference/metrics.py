"""Prometheus metrics of the inference service (own registry, prefix ``emily_inference_``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from emily.inference.backend import BackendInfo
from emily.observe.metrics import service_registry

# seconds: from 5 ms (a cached prompt on a GPU) to 5 min (a long CPU generation)
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


#: Why a request is refused (the ``reason`` label of ``emily_inference_rejections_total``).
REJECTION_REASONS = ("busy", "timeout", "bad_request", "not_found")


class InferenceMetrics:
    """Every collector of the service.

    Attributes
    ----------
    ttft : histogram ``emily_inference_ttft_seconds``: arrival to first text, in s.
    latency : histogram ``emily_inference_latency_seconds``: arrival to last token, in s.
    prompt_tokens, generated_tokens : counters, in tokens.
    tokens_per_second : gauge, generation speed of the last finished request (tokens/s).
    queue_depth : gauge, requests waiting (not counting the running ones).
    slots_busy : gauge, requests being decoded now (at most ``slots``).
    prefix_hits : counter, requests that started from the cached system prompt.
    rejections : counter by ``reason`` (busy, timeout, bad_request, not_found).
    requests : counter by ``api`` (zenoh, http) and ``finish_reason``.
    backend : info ``emily_inference_backend_info`` (backend, device, model).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or service_registry()
        r = self.registry
        p = "emily_inference_"
        self.ttft = Histogram(
            f"{p}ttft_seconds", "Arrival to first generated text", buckets=_BUCKETS, registry=r
        )
        self.latency = Histogram(
            f"{p}latency_seconds", "Arrival to last generated token", buckets=_BUCKETS, registry=r
        )
        self.prompt_tokens = Counter(f"{p}prompt_tokens", "Prompt tokens processed", registry=r)
        self.generated_tokens = Counter(f"{p}generated_tokens", "Tokens generated", registry=r)
        self.tokens_per_second = Gauge(
            f"{p}tokens_per_second", "Generation speed of the last request", registry=r
        )
        self.queue_depth = Gauge(f"{p}queue_depth", "Requests waiting in the queue", registry=r)
        self.slots_busy = Gauge(f"{p}slots_busy", "Requests being decoded now", registry=r)
        self.prefix_hits = Counter(
            f"{p}prefix_cache_hits", "Requests started from the cached system prompt", registry=r
        )
        self.rejections = Counter(
            f"{p}rejections", "Requests refused, by reason", ["reason"], registry=r
        )
        self.requests = Counter(
            f"{p}requests", "Finished requests", ["api", "finish_reason"], registry=r
        )
        self.backend = Info(f"{p}backend", "Backend that really runs the model", registry=r)
        # exported at 0 from the start, so the rejections panel has a series before any
        for reason in REJECTION_REASONS:
            self.rejections.labels(reason=reason)

    def set_backend(self, info: BackendInfo, model: str, n_gpu_layers: int) -> None:
        """Publish the backend once the model is loaded."""
        self.backend.info(
            {
                "backend": info.backend,
                "device": info.device,
                "gpu_offload_supported": str(info.gpu_offload_supported).lower(),
                "n_gpu_layers": str(n_gpu_layers),
                "model": model,
            }
        )
