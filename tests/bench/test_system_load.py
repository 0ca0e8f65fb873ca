"""bench/system_load.py, 30 seconds of it: the stack under 10 concurrent clients, paused
once for a quiet checkpoint, loses, duplicates and fails nothing.

The figures are the benchmark's own (it counts acknowledged episodes in Postgres by id);
the test only reads them, so it holds no time limit of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.helpers import bench_module

pytestmark = pytest.mark.slow


def test_ten_clients_for_thirty_seconds_paused_once_lose_nothing(tmp_path: Path) -> None:
    r = bench_module("system_load").run(
        clients=10,
        duration_s=30.0,
        n_base=5,
        root=tmp_path,
        quiet_every_s=20.0,
        heap_dumps=True,
        memory_env={"EMILY_MEMORY__HEAP_TRIM_S": "2"},  # quiet checkpoints wait for a trim
    )
    paths = r["paths"]
    assert r["exited"] == [], r["exited"]  # every service ran to the end
    assert {p: s["errors"] for p, s in paths.items()} == dict.fromkeys(paths, 0), paths
    assert all(s["n"] > 0 for s in paths.values()), paths  # every path was driven
    # each deliberation answered otherwise is counted under the reason its trace gives
    delib = paths["deliberate"]
    otherwise = sum(n for tier, n in delib["answered_by"].items() if tier != "deliberation")
    assert otherwise == 0 or 0 < sum(delib["why"].values()) <= otherwise, delib
    assert all(why.split(" ")[0] != "deliberation" for why in delib["why"]), delib
    assert r["acked_episodes"] > 0
    assert r["lost"] == 0, r["lost_ids"]
    assert r["duplicated"] == 0, r["duplicated_seqs"]
    # cognition's episode outbox drained: nothing acknowledged is still waiting there
    assert r["cognition_pending_at_count"] == 0, r["cognition_episodes"]
    # repeated statements merge into the first one (consolidation); nothing else is gone
    assert r["episodes_in_postgres"] + r["merged"] == r["acked_episodes"]
    # memory's search index follows every kept episode
    assert r["indexed"] >= r["episodes_in_postgres"]
    # a quiet checkpoint after the first 20 s and one after the load, each from a trim
    quiet = r["kept_when_quiet"]
    assert len(quiet) == 2 and quiet[0][1] < quiet[1][1], quiet
    assert all(kept > 100 * 2**20 and shapes > 0 for _, _, kept, shapes, _ in quiet), quiet
    assert all(slots >= n for _, n, _, _, slots in quiet), quiet  # live and removed
    assert quiet[-1][1] >= r["episodes_in_postgres"]
    # memory wrote a heap dump at each, after the trim the kept size came from
    dumps = r["heap_dumps"]
    assert [d["seq"] for d in dumps] == [1, 2], dumps
    assert [d["episodes"] for d in dumps] == [n for _, n, *_ in quiet]
    # every episode counted has its label (a merge since the count removes an episode
    # from the index, and its label stays)
    assert all(d["structures"]["labels"] >= d["episodes"] for d in dumps)
    assert all(d["maps"]["python_arenas"]["rss"] > 0 and "after_trim" in d for d in dumps)
    # each checkpoint ran consolidation dry first: no pass held its statements at a dump
    assert len(r["consolidated_when_quiet"]) == 2, r["consolidated_when_quiet"]
    assert all("_Statement" not in d["python"]["objects"] for d in dumps), dumps
    # the large blocks are listed with the arrays they hold
    assert all(d["large_blocks"] and d["large_blocks"][0]["rss"] > 0 for d in dumps)


def test_the_load_is_cut_into_stretches_between_quiet_checkpoints() -> None:
    stretches = bench_module("system_load").stretches
    assert stretches(300.0, 0.0) == [300.0]
    assert stretches(300.0, 100.0) == [100.0, 100.0, 100.0]
    assert stretches(30.0, 20.0) == [20.0, 10.0]
    assert stretches(30.0, 60.0) == [30.0]
