"""Settings of the ``[cognition]`` config section (TOML or ``EMILY_COGNITION__*``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from emily.config import load_section


@dataclass(frozen=True)
class CognitionConfig:
    """Settings of the cognition service.

    Attributes
    ----------
    http_addr, http_port : where ``/v1/observe``, ``/metrics`` and ``/healthz`` listen.
    http_max_body_bytes : largest HTTP request body (bytes); larger ones get 413.
    api_key_file : a file holding a bearer token that ``/v1/*`` requires; unset, the API
        is open (it listens on loopback by default).
    embeddings : load MiniLM for the reflex's second stage and for recall vectors.
    capacity : global workspace capacity (items).
    recall_k : episodes recalled per cycle.
    recall_search : ``hybrid`` (vector and full text, fused) or ``vector`` recall.
    facts_k : facts looked up per question.
    recall_timeout_s : deadline of the memory recall stage (s).
    deliberate_timeout_s : deadline of the LLM stage (s).
    store_timeout_s : deadline of storing a batch of episodes (s); doubled after each
        failed store in a row, up to ``store_timeout_max_s``.
    store_timeout_max_s : longest store deadline (s).
    store_batch : most episodes sent in one store (1 to 1000).
    store_backoff_s, store_backoff_max_s : wait before resending after a failed store
        (s), doubled after each further failure up to ``store_backoff_max_s``.
    reflex_budget_ms : a reflex slower than this counts as a latency event (ms).
    pending_max : episodes kept for retry while memory is unreachable.
    outbox_sync : durability of the episode outbox, which every cycle writes before its
        reply is sent: ``normal`` (the default) survives cognition being killed or
        crashing; ``full`` also survives a power loss, for one fsync per cycle.
    stochastic : sample the policy instead of taking the most probable one.
    memory_node, inference_node : the node (``emily/<node>/``) whose memory and inference
        services cognition uses; empty means cognition's own ``[bus] node``. Set them when
        those services run on another host of the router mesh.
    perception_node : the node whose perception service transcribes audio and reads
        images for cognition; empty means cognition's own ``[bus] node``.
    perceive_timeout_s : deadline of one transcription or image read (s).
    """

    http_addr: str = "127.0.0.1"
    http_port: int = 8462
    http_max_body_bytes: int = 16 << 20
    api_key_file: Path | None = None
    embeddings: bool = True
    capacity: int = 7
    recall_k: int = 5
    recall_search: Literal["vector", "hybrid"] = "hybrid"
    facts_k: int = 5
    recall_timeout_s: float = 0.5
    deliberate_timeout_s: float = 60.0
    store_timeout_s: float = 2.0
    store_timeout_max_s: float = 60.0
    store_batch: int = 100
    store_backoff_s: float = 0.5
    store_backoff_max_s: float = 30.0
    reflex_budget_ms: float = 2.0
    pending_max: int = 10_000
    outbox_sync: Literal["normal", "full"] = "normal"
    stochastic: bool = False
    memory_node: str = ""
    inference_node: str = ""
    perception_node: str = ""
    perceive_timeout_s: float = 120.0

    @classmethod
    def load(cls) -> CognitionConfig:
        """Read ``[cognition]`` from the config file and ``EMILY_COGNITION__*``."""
        return load_section(cls, "cognition")
