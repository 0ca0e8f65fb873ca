"""L0 exact search equals a NumPy brute force, with and without filters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emily.bus.schemas.memory import RecallFilters
from emily.memory.filters import matches
from emily.memory.l0 import L0, pick_device
from tests.memory.helpers import records


def test_search_matches_brute_force_and_filters() -> None:
    recs = records(50)
    l0 = L0(64, torch.device("cpu"))
    for r in recs:
        l0.put(r)
    for r in recs[:10]:
        l0.pop(r.id)
    held = recs[10:]
    queries = np.stack([recs[i].embedding for i in (0, 20, 30)])
    got = l0.search(queries, 5)
    mat = np.stack([r.embedding for r in held])
    for q, row in zip(queries, got, strict=True):
        want = np.argsort(-(mat @ q))[:5]
        assert [k for k, _ in row] == [held[i].id for i in want]
        np.testing.assert_allclose([s for _, s in row], (mat @ q)[want], atol=1e-5)
    f = RecallFilters(source="other", min_arousal=0.5)
    row = l0.search(queries[0], 10, f)[0]
    allowed = {r.id for r in held if matches(f, r)}
    assert {k for k, _ in row} == set(list(allowed)[:10]) or len(row) == min(10, len(allowed))
    assert all(k in allowed for k, _ in row)


def test_empty_and_full() -> None:
    l0 = L0(2, torch.device("cpu"))
    assert l0.search(np.ones(384, dtype=np.float32), 3) == [[]]
    recs = records(2)
    l0.put(recs[0])
    l0.put(recs[1])
    assert l0.full and len(l0) == 2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    recs = records(100)
    cpu, gpu = L0(128, torch.device("cpu")), L0(128, pick_device("cuda"))
    for r in recs:
        cpu.put(r)
        gpu.put(r)
    q = recs[3].embedding
    assert [k for k, _ in cpu.search(q, 10)[0]] == [k for k, _ in gpu.search(q, 10)[0]]
