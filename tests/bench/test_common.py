"""bench/common.py: the one percentile, table and plot helper every benchmark uses."""

from __future__ import annotations

import importlib.util
import os
import socket
import statistics
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load() -> ModuleType:
    # bench/ is a folder of scripts, not a package: load the file itself.
    spec = importlib.util.spec_from_file_location("bench_common", BENCH / "common.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


common = _load()
samples = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=2, max_size=200
)


@given(samples, st.sampled_from([1, 5, 25, 50, 75, 95, 99]))
def test_percentile_matches_the_standard_library(xs: list[float], q: int) -> None:
    """statistics.quantiles(method="inclusive") is an independent implementation of the
    same definition (linear interpolation between closest ranks)."""
    want = statistics.quantiles(xs, n=100, method="inclusive")[q - 1]
    assert common.percentile(xs, q) == pytest.approx(want, rel=1e-9, abs=1e-6)


@given(samples, st.floats(min_value=0, max_value=100))
def test_percentile_lies_within_the_samples(xs: list[float], q: float) -> None:
    assert min(xs) <= common.percentile(xs, q) <= max(xs)


def test_percentile_known_values() -> None:
    assert common.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert common.percentile([7.0], 99) == 7.0
    assert common.percentile(list(range(101)), 95) == 95.0


def test_percentile_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no samples"):
        common.percentile([], 50)
    with pytest.raises(ValueError, match=r"outside 0\.\.100"):
        common.percentile([1.0, 2.0], 150)


def test_pcts_formats_p50_p95_p99_and_the_count() -> None:
    ms = [float(i) for i in range(1, 101)]
    line = common.pcts(ms, 2)
    assert line == (
        f"p50 {np.percentile(ms, 50):7.2f}  p95 {np.percentile(ms, 95):7.2f}  "
        f"p99 {np.percentile(ms, 99):7.2f} ms (n=100)"
    )


def test_table_header_first_then_rows() -> None:
    rows = [("exact scan", "1.0", "nan", "-"), ("hnsw", "1,234", "12x", "own top-1 0.9")]
    text = common.table(("path", "rate", "ratio", "note"), rows)
    assert text.splitlines() == [
        "path         rate  ratio  note",
        "----------  -----  -----  -------------",
        "exact scan    1.0    nan  -",
        "hnsw        1,234    12x  own top-1 0.9",
    ]


def test_table_right_aligns_figures_only() -> None:
    rows = [(1, "+10.7 pts", "LRU", "0.52", "-0.5%"), (2, "+0.0 pts", "S3-FIFO", "1e-05", "3±1")]
    lines = common.table(("n", "vs LRU", "policy", "hit", "gap"), rows).splitlines()
    assert lines[2] == "1  +10.7 pts  LRU       0.52  -0.5%"
    assert lines[3] == "2   +0.0 pts  S3-FIFO  1e-05    3±1"


def test_table_rejects_a_ragged_row() -> None:
    with pytest.raises(ValueError, match="row 2 has 1 cells, the header 2"):
        common.table(("a", "b"), [("1", "2"), ("3",)])


def test_free_port_can_be_bound() -> None:
    port = common.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_load_line_names_three_averages() -> None:
    line = common.load_line("at start")
    assert line.startswith("load average at start (1, 5, 15 min): ")
    assert len(line.split(": ")[1].split(", ")) == 3


def test_barh_plot_writes_a_png(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "OUT", tmp_path)
    path = common.barh_plot([("a", 1.0), ("b", 100.0)], xlabel="x", filename="t.png", log=True)
    assert path == tmp_path / "t.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cell_number_reads_a_printed_rate() -> None:
    assert common.cell_number("12,345") == 12345.0


def test_env_pairs_reads_settings_and_refuses_a_bare_word() -> None:
    assert common.env_pairs("A=1, B = x=y ,") == {"A": "1", "B": "x=y"}
    assert common.env_pairs("") == {}
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        common.env_pairs("A=1,oops")
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        common.env_pairs("=1")


def test_rss_kib_of_this_process_and_of_one_that_is_gone() -> None:
    assert common.rss_kib(os.getpid()) > 10 * 1024  # this interpreter, numpy loaded
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert common.rss_kib(child.pid) == 0


def test_slope_fits_a_line_and_is_nan_without_enough_distinct_points() -> None:
    assert common.slope([0, 1, 2, 3], [5.0, 7.0, 9.0, 11.0]) == pytest.approx(2.0)
    assert common.slope([0, 1], [5.0, 7.0]) != common.slope([0, 1], [5.0, 7.0])  # 3 by default
    assert common.slope([0, 1], [5.0, 7.0], min_points=2) == pytest.approx(2.0)
    assert common.slope([4, 4, 4], [1.0, 2.0, 3.0]) != common.slope([4, 4, 4], [1.0, 2.0, 3.0])


def test_slope_se_is_zero_on_a_line_and_grows_with_the_scatter() -> None:
    xs = [0.0, 1.0, 2.0, 3.0, 4.0]
    b, se = common.slope_se(xs, [5.0, 7.0, 9.0, 11.0, 13.0])
    assert b == pytest.approx(2.0) and se == pytest.approx(0.0, abs=1e-9)
    small = common.slope_se(xs, [5.0, 7.5, 8.5, 11.0, 13.0])[1]
    large = common.slope_se(xs, [5.0, 10.0, 6.0, 11.0, 13.0])[1]
    assert 0 < small < large
    # the textbook case: y = x with residuals (1, -2, 1) at x = (0, 1, 2): se = sqrt(6) / sqrt(2)
    assert common.slope_se([0, 1, 2], [1.0, -1.0, 3.0]) == pytest.approx((1.0, 3**0.5))
    assert all(v != v for v in common.slope_se([0, 1], [1.0, 2.0]))  # too few points
    assert all(v != v for v in common.slope_se([2, 2, 2], [1.0, 2.0, 3.0]))  # one x
