"""bench/memory_rss.py at tiny sizes: it drives the real service, reads its heap dumps
at every checkpoint and prints its tables."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = pytest.mark.slow


def _load() -> ModuleType:
    # bench/ is a folder of scripts importing each other by bare name
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module("memory_rss")


def test_tiny_run_dumps_at_every_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)  # glibc's default in the first
    mr = _load()
    args = mr.parser().parse_args(
        [
            "--episodes",
            "60",
            "--every",
            "20",
            "--warmup",
            "10",
            "--clients",
            "2",
            "--tracemalloc",
            "1",
            "--variants",
            "EMILY_MEMORY__MALLOC_ARENA_MAX=0;default",
        ]
    )
    # the baseline at counts large enough for pages to resolve a slope (20 elements
    # are 9 pages)
    sized = mr.parser().parse_args(["--episodes", "3000", "--every", "1000", "--warmup", "5000"])
    alone = mr.baselines(sized)
    # the index alone grows by at least its vectors and base-layer links per element
    assert alone["index"] > 384 * 4 and alone["hnswlib"] > 384 * 4
    variants = mr.run(args, tmp_path)
    assert [v.name for v in variants] == ["EMILY_MEMORY__MALLOC_ARENA_MAX=0", "default"]
    for v in variants:
        assert v.errors == 0
        assert len(v.dumps) == 4 and [d["seq"] for d in v.dumps] == [1, 2, 3, 4]
        assert v.episodes == sorted(v.episodes) and v.episodes[-1] >= 70
        # the service's index followed the stores it acknowledged
        assert v.dumps[-1]["structures"]["indexed"] >= v.episodes[-1]
        assert v.dumps[-1]["python"]["traced_bytes"] > 0
        # every checkpoint is trimmed: what the service keeps is at most what it held
        for d in v.dumps:
            assert 0 < d["after_trim"]["VmRSS"] <= d["proc"]["VmRSS"] + 2**20
        mr.report(v, alone)
    # the service bounds glibc's arenas itself (mallopt at start, [memory]
    # malloc_arena_max = 2 by default); 0 leaves glibc's own count, more under threads
    assert (
        variants[1].dumps[-1]["malloc"]["arenas"] <= 2 < variants[0].dumps[-1]["malloc"]["arenas"]
    )
    mr.compare(variants, alone)
    out = capsys.readouterr().out
    assert "kept B/episode, 2nd half" in out and "glibc malloc free, kept" in out
    assert "memory's index alone (measured)" in out and "vs index alone" in out
