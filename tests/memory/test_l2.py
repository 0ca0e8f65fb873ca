"""L2 memory-mapped slots: round trip, restart, torn writes and oversize records."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emily.memory.l2 import L2
from tests.memory.helpers import records


def test_round_trip_and_survives_reopen(tmp_path: Path) -> None:
    recs = records(10)
    l2 = L2(tmp_path, 16)
    for r in recs:
        assert l2.room() and l2.put(r)
    l2.pop(recs[0].id)
    l2.flush()
    del l2
    again = L2(tmp_path, 16)
    assert set(again.slot_of) == {r.id for r in recs[1:]} and len(again.free) == 7
    got = again.get(recs[5].id)
    assert (got.text, got.ts, got.context, got.source) == (
        recs[5].text,
        recs[5].ts,
        recs[5].context,
        recs[5].source,
    )
    np.testing.assert_array_equal(got.embedding, recs[5].embedding)


def test_injected_torn_write_reads_as_free(tmp_path: Path) -> None:
    recs = records(2)
    l2 = L2(tmp_path, 4)
    assert l2.room() and l2.put(recs[0])
    slot = l2.slot_of[recs[0].id]
    l2.close()
    with l2.rec_path.open("r+b") as fh:  # the fault: the length word never reached the disk
        fh.seek(slot * l2.slot_bytes)
        fh.write(bytes(4))
    assert len(L2(tmp_path, 4)) == 0


def test_oversize_record_is_refused_and_geometry_change_starts_empty(tmp_path: Path) -> None:
    recs = records(1)
    small = L2(tmp_path / "s", 2, slot_bytes=32)
    assert not small.fits(recs[0]) and not small.put(recs[0]) and len(small) == 0
    l2 = L2(tmp_path / "g", 4)
    assert l2.room() and l2.put(recs[0])
    l2.close()
    assert len(L2(tmp_path / "g", 8)) == 1  # a larger capacity keeps the slots
    assert len(L2(tmp_path / "g", 8, slot_bytes=2048)) == 0  # another slot size starts empty
    assert {p.name for p in (tmp_path / "g").iterdir()} == {"vectors.b2048.f32", "slots.b2048.bin"}
