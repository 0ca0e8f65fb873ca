"""bench/system_load_report.py: the kept-size tables of a whole-stack run's report."""

from __future__ import annotations

import pytest

from tests.bench.helpers import bench_module

MIB = 2**20


def _rows() -> list[list[float]]:
    return [[90.0 * i, 1000 * i, (600 + 2 * i) * MIB, 19, 1200 * i] for i in range(1, 5)]


def test_a_quiet_series_shows_the_index_alone_and_what_memory_keeps_beyond_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = bench_module("system_load_report")
    m = {
        "quiet_kept_bytes_per_episode": 2097.2,
        "quiet_kept_bytes_per_episode_2nd_half": 2097.2,
        "quiet_index_alone": 2000.0,
        "quiet_index_alone_whole": 2050.0,
        "quiet_excess": [47.2, 12.5],
        "quiet_excess_2nd_half": [97.2, 80.0],
        "quiet_index_alone_bytes": [(40 + 2 * i) * MIB for i in range(1, 5)],
    }
    report.kept_table("quiet", "checkpoint at s", _rows(), m, "quiet_")
    out = capsys.readouterr().out
    assert "index alone MiB" in out and "kept less the index alone MiB" in out
    # each row: the index alone, and the kept size less it (600 + 2i less 40 + 2i)
    lines = [ln.split() for ln in out.splitlines() if ln.strip().startswith(("90", "180"))]
    assert [ln[-2:] for ln in lines] == [["42.0", "560.0"], ["44.0", "560.0"]]
    assert "the index alone grown to the same slots: 2,000 B/episode (1.05x)" in out
    assert "index alone kept 2,050 B/episode (1.02x)" in out
    assert "47 ± 12 B/episode over the whole run, 97 ± 80 over the second half" in out


def test_a_run_written_before_the_excess_was_kept_still_reports(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = bench_module("system_load_report")
    m = {
        "kept_bytes_per_episode": 2500.0,
        "kept_bytes_per_episode_2nd_half": 2400.0,
        "index_alone": 2000.0,
    }
    report.kept_table("under load", "trim at s", _rows(), m, "")
    out = capsys.readouterr().out
    assert "(1.20x)" in out and "index alone MiB" not in out and "±" not in out
