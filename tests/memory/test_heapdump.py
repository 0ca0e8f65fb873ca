"""The opt-in heap dump of the memory service: off by default, and what a dump holds."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from emily.memory import heapdump
from emily.memory.core import Memory
from tests.memory.helpers import records


def test_without_the_variable_nothing_is_installed(
    memory: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(heapdump.DIAG_ENV, raising=False)
    before = signal.getsignal(signal.SIGUSR1)
    assert heapdump.install(memory) is None
    assert signal.getsignal(signal.SIGUSR1) is before


def test_a_dump_names_the_kernels_glibcs_and_memorys_own_figures(
    memory: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(heapdump.DIAG_ENV, "1")
    monkeypatch.delenv(heapdump.TRACE_ENV, raising=False)
    dumper = heapdump.install(memory)
    assert dumper is not None
    try:
        assert memory.indexer is not None and memory.indexer.ready.wait(60)
        memory._insert(records(50))
        data = dumper.dump(trim=True)
        assert data["proc"]["VmRSS"] > 0 and data["proc"]["RssAnon"] > 0
        assert data["malloc"]["in_use"] > 0 and data["malloc"]["arenas"] >= 1
        s = data["structures"]
        assert s["indexed"] == 50 and s["labels"] == 50
        # the layout estimate grows with the elements held: base layer alone is 1.6 KB each
        assert s["hnsw_bytes"] >= 50 * (2 * 8 * 4 + 384 * 4)
        assert data["after_trim"]["VmRSS"] > 0 and data["after_trim"]["RssAnon"] > 0
        assert json.loads(dumper.path.read_text())["seq"] == 1
        # the signal asks for the next one
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(600):
            if json.loads(dumper.path.read_text())["seq"] == 2:
                break
            time.sleep(0.05)
        assert json.loads(dumper.path.read_text())["seq"] == 2
    finally:
        dumper.stop()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_hnsw_estimate_counts_elements_and_slots() -> None:
    one = heapdump.hnsw_bytes(1000, 1000, 16, 384)
    assert heapdump.hnsw_bytes(2000, 2000, 16, 384) == pytest.approx(2 * one, rel=0.01)
    per = one / 1000  # about 1.7 KB of layout plus the label map and per-slot locks
    assert 1700 < per < 1900
    assert heapdump.hnsw_bytes(1000, 2000, 16, 384) - one == 1000 * 52


def test_a_frame_count_that_is_not_a_number_is_refused(
    memory: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(heapdump.DIAG_ENV, "1")
    monkeypatch.setenv(heapdump.TRACE_ENV, "lots")
    with pytest.raises(ValueError, match="number of frames"):
        heapdump.install(memory)
