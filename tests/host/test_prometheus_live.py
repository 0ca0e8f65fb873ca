"""Debian's real Prometheus, with the host's scrape configs and alert rules, scraping a
running stack (``emily up``): every Emily target is up, every panel query of the
service dashboards returns data, and every alert about the Emily services reads series
that exist and is silent while the stack is healthy."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.host.tools import tool

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load() -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module("dashboards")


dash = _load()


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tool("prometheus")
    root = tmp_path_factory.mktemp("prometheus-live")
    with (
        dash.stack(root / "state") as st,
        dash.prometheus(root / "prometheus", dash.scrape_configs(st.ports)) as url,
    ):
        dash.traffic(st.endpoint, rounds=2, llm=1)
        # rates over the dashboards' 5-minute windows need two scrapes after traffic
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            health = dash.targets(url)
            if all(health.get(job) == "up" for job in dash.JOBS):
                break
            time.sleep(1)
        dash.traffic(st.endpoint, rounds=1, llm=0)
        time.sleep(4)
        yield url


def test_every_emily_target_is_up(prom: str) -> None:
    health = dash.targets(prom)
    assert {job: health.get(job) for job in dash.JOBS} == dict.fromkeys(dash.JOBS, "up")


@pytest.mark.parametrize("name", dash.SERVICE_DASHBOARDS)
def test_every_panel_query_returns_data(prom: str, name: str) -> None:
    empty = [
        f"{title}: {expr}"
        for title, exprs in dash.panels(name)
        for expr in exprs
        if not dash.query(prom, expr)
    ]
    assert empty == []


def test_every_emily_alert_reads_existing_series_and_is_silent(prom: str) -> None:
    checked = 0
    for alert, expr in dash.alert_rules():
        names = dash.metric_names(expr)
        if not any(n.startswith(dash.SERVICE_PREFIXES) for n in names) and "emily-" not in expr:
            # host exporters and scripts (node, zfs, postgres, GPU, the backup job's
            # textfile metrics) do not run here
            continue
        checked += 1
        for name in names:
            assert dash.query(prom, f"count({name})"), f"{alert} reads {name}, which is absent"
        assert dash.query(prom, expr) == [], f"{alert} fires on a healthy stack"
    assert checked >= 2


def test_a_query_of_a_missing_series_returns_nothing(prom: str) -> None:
    # the checks above can fail: a name no service exports gives no data
    assert dash.query(prom, "emily_memory_no_such_metric_total") == []
