"""What every benchmark family shares: a free port, percentiles, tables, the load line,
plots, a process's memory.

The family modules (``cognition_common``, ``memory_common``, ``neural_common``) hold what
only their family needs and import these, so that every benchmark computes a percentile
the same way and prints its tables in the same shape.
"""

from __future__ import annotations

import os
import re
import socket
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emily.memory.malloc import proc_status

OUT = Path(__file__).resolve().parent / "out"
QUANTILES = (50, 95, 99)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(xs: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (``q`` in 0..100) of ``xs``, linearly interpolated
    between the closest ranks (NumPy's default).

    Raises ``ValueError`` for an empty ``xs`` or a ``q`` outside 0..100.
    """
    if len(xs) == 0:
        raise ValueError("percentile of no samples: the benchmark measured nothing")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q={q!r} is outside 0..100")
    return float(np.percentile(np.asarray(xs, dtype=float), q))


def pcts(ms: Sequence[float], digits: int = 3) -> str:
    """``p50 … p95 … p99 … ms (n=…)`` of latencies ``ms`` (milliseconds)."""
    width = digits + 5
    cells = "  ".join(f"p{q} {percentile(ms, q):{width}.{digits}f}" for q in QUANTILES)
    return f"{cells} ms (n={len(ms)})"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: ``header``, a rule, then one line per row.

    Cells are ``str()``-ed. A column whose every cell is a figure (``1,234``, ``-0.5``,
    ``3.2x``, ``+1.0 pts``, ``0.5±0.1``; ``-`` or ``nan`` for none) is right-aligned, any other
    left-aligned.
    Every row must have as many cells as ``header``.
    """
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    for i, r in enumerate(cells[1:], 1):
        if len(r) != len(header):
            raise ValueError(f"table row {i} has {len(r)} cells, the header {len(header)}")
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    right = [all(_FIGURE.match(r[i]) for r in cells[1:]) for i in range(len(header))]

    def line(r: list[str]) -> str:
        padded = (c.rjust(w) if f else c.ljust(w) for c, w, f in zip(r, widths, right, strict=True))
        return "  ".join(padded).rstrip()

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])])


_FIGURE = re.compile(r"[-+]?\d[\d,.]*(e[-+]?\d+)?(±[\d,.]+)?(x|%| \S+)?$|-$|nan$")


def load() -> str:
    """The 1-minute load average, one decimal (a table cell: other jobs share the cores)."""
    return f"{os.getloadavg()[0]:.1f}"


def load_line(when: str) -> str:
    """``load average <when> (1, 5, 15 min): a, b, c``: the line a benchmark prints at its
    start and end, so that a reader can tell how busy the machine was."""
    one, five, fifteen = os.getloadavg()
    return f"load average {when} (1, 5, 15 min): {one:.2f}, {five:.2f}, {fifteen:.2f}"


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (benchmarks write PNGs, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plot(fig: Any, filename: str) -> Path:
    """Write ``fig`` to ``bench/out/<filename>`` (120 dpi), print and return the path."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / filename
    fig.savefig(path, dpi=120, bbox_inches="tight")
    pyplot().close(fig)
    print(f"plot: {path}")
    return path


def barh_plot(
    bars: Sequence[tuple[str, float]],
    *,
    xlabel: str,
    filename: str,
    log: bool = False,
    title: str | None = None,
) -> Path:
    """One horizontal bar per ``(label, value)`` in ``bars``, written by
    :func:`save_plot`; ``log`` puts the x axis on a log scale."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.35 * len(bars) + 1)))
    ax.barh([label for label, _ in bars], [value for _, value in bars])
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    return save_plot(fig, filename)


def cell_number(cell: str) -> float:
    """A table cell such as ``"12,345"`` back to a number (to plot a printed table)."""
    return float(cell.replace(",", ""))


def slope(xs: Sequence[float], ys: Sequence[float], min_points: int = 3) -> float:
    """Least-squares slope of ``ys`` over ``xs`` (bytes per episode, say); ``nan`` with
    fewer than ``min_points`` points or with every ``x`` the same."""
    if len(xs) < min_points or np.ptp(np.asarray(xs, float)) == 0:
        return float("nan")
    return float(np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)[0])


def slope_se(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope of ``ys`` over ``xs`` and its standard error (the residuals'
    spread over the spread of ``xs``); ``(nan, nan)`` with fewer than 3 points or every
    ``x`` the same."""
    x, y = np.asarray(xs, float), np.asarray(ys, float)
    if len(x) < 3 or np.ptp(x) == 0:
        return float("nan"), float("nan")
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    se = np.sqrt(float(resid @ resid) / (len(x) - 2) / float(((x - x.mean()) ** 2).sum()))
    return float(b), float(se)


def env_pairs(spec: str) -> dict[str, str]:
    """``K=V,K2=V2`` -> ``{"K": "V", "K2": "V2"}`` (settings for a service's environment;
    ``""``: none)."""
    env: dict[str, str] = {}
    for kv in (p for p in spec.split(",") if p.strip()):
        key, sep, value = kv.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"a setting is KEY=VALUE[,KEY=VALUE], not {kv!r}")
        env[key.strip()] = value.strip()
    return env


Samples = dict[str, list[tuple[dict[str, str], float]]]
"""A ``/metrics`` page's samples by name (``..._total`` for counters): (labels, value)."""


def scrape(url: str, timeout_s: float = 10.0) -> Samples:
    """Every sample of the Prometheus text exposition at ``url``."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        text = resp.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


def rss_kib(pid: int) -> int:
    """Resident set of process ``pid`` (KiB; 0 once it is gone)."""
    return proc_status(Path(f"/proc/{pid}/status")).get("VmRSS", 0) // 1024


def pss_tree_kib(pid: int) -> int:
    """Proportional set size of ``pid`` and its children, summed (KiB): Postgres' shared
    buffers counted once across its backends."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0
    total = 0
    for p in [str(pid), *kids]:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total
