"""L3's facade against a real Postgres + pgvector: what is stored reads back whole, once."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from emily.memory.store import PgStore
from tests.memory.helpers import records


def test_copy_ingest_is_exactly_once(store: PgStore) -> None:
    recs = records(300)
    recs[4] = replace(recs[4], text='naïve café 🐈 \\ "q"', context={"ключ": "значение", "f": 1.5})
    assert store.insert(recs) == 300
    assert store.insert(recs[:150]) == 0  # a retried batch adds nothing
    assert store.insert(recs[:1]) == 0  # single insert path, same rule
    assert store.count() == 300
    got = store.fetch([r.id for r in recs[:5]])
    for r in recs[:5]:
        g = got[r.id]
        assert (g.text, g.ts, g.context, g.source) == (r.text, r.ts, r.context, r.source)
        assert g.valence == pytest.approx(r.valence, abs=1e-6)
        np.testing.assert_allclose(g.embedding, r.embedding, atol=1e-6)
