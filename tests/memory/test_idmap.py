"""The compact id map: the same answers as a dict, across merges, removals and a
reload, in a few dozen bytes per id."""

from __future__ import annotations

import random
import tracemalloc
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emily.ids import uuid7
from emily.memory import idmap
from emily.memory.idmap import IdMap


def _check(m: IdMap, model: dict[uuid.UUID, int], gone: set[uuid.UUID]) -> None:
    assert len(m) == len(model)
    assert dict(m.items()) == model
    assert list(m) == sorted(model, key=model.__getitem__)
    keys = list(model) + list(gone - set(model))
    assert m.find(keys).tolist() == [model.get(k, -1) for k in keys]
    for key, label in model.items():
        assert m[key] == label and key in m and m.uuid_at(label) == key


@pytest.fixture(autouse=True)
def _small_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idmap, "TAIL_MIN", 8)  # merges every few appends


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["add", "remove", "readd"]), st.integers(1, 40)),
        max_size=40,
    ),
    v7=st.booleans(),
)
def test_the_map_answers_as_a_dict_does(ops: list[tuple[str, int]], v7: bool) -> None:
    rng = random.Random(len(ops))
    m, model, gone = IdMap(), {}, set()  # type: ignore[var-annotated]
    for op, n in ops:
        if op == "add":
            fresh = [uuid7() if v7 else uuid.UUID(int=rng.getrandbits(128)) for _ in range(n)]
            labels = m.append(fresh)
            model.update(zip(fresh, labels.tolist(), strict=True))
        elif op == "remove" and model:
            for key in rng.sample(sorted(model), min(n, len(model))):
                assert m.pop(key) == model.pop(key)
                gone.add(key)
        elif op == "readd" and gone - set(model):
            back = sorted(gone - set(model))[:n]
            model.update(zip(back, m.append(back).tolist(), strict=True))
        assert m.pop(uuid.UUID(int=0)) is None
        _check(m, model, gone)
    again = IdMap.from_bytes(m.to_bytes(), m.dead().tolist())
    _check(again, model, gone)


def test_a_damaged_table_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes per label"):
        IdMap.from_bytes(b"\0" * 17)
    key = uuid7().bytes
    with pytest.raises(ValueError, match="same live id twice"):
        IdMap.from_bytes(key + key)
    assert len(IdMap.from_bytes(key + key, [0])) == 1
    with pytest.raises(ValueError, match="outside"):
        IdMap.from_bytes(key, [3])


def test_an_id_costs_a_few_dozen_bytes() -> None:
    # ids made while tracing and then dropped by the caller: what the map keeps of them
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        m = IdMap()
        for _ in range(50):
            m.append([uuid7() for _ in range(1000)])
        per = (tracemalloc.get_traced_memory()[0] - base) / len(m)
    finally:
        tracemalloc.stop()
    # 16-byte id by label, its sorted copy, a 4-byte label and a live flag, with the
    # arrays' doubling slack; a dict and a list of UUIDs take about 200
    assert per < 80, f"{per:.0f} B per id"
    assert np.array_equal(m.labels(), np.arange(50_000))
