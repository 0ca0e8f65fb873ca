"""Process-level tuning: run in a child process, so this test process keeps its defaults."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from emily.runtime import tune_for_latency

CHILD = """
import gc, json, sys
from emily.runtime import tune_for_latency

class Node:
    def __init__(self):
        self.me = self

before = Node()  # alive at start-up: frozen, never walked again
t = tune_for_latency(switch_interval_s=0.001, gen0_threshold=5000)
frozen_ids = {id(o) for o in gc.get_objects()}  # the permanent generation is not listed
for _ in range(100):
    Node()  # cyclic garbage made after start-up
print(json.dumps({
    "switch": sys.getswitchinterval(),
    "thresholds": list(gc.get_threshold()),
    "reported": [t.switch_interval_s, list(t.thresholds), t.frozen],
    "freeze_count": gc.get_freeze_count(),
    "before_listed": id(before) in frozen_ids,
    "collected_after": gc.collect(),
}))
"""


def test_tuning_freezes_the_start_up_heap_and_sets_gc_and_gil() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True
    )
    got = json.loads(out.stdout)
    assert got["switch"] == pytest.approx(0.001)
    assert got["thresholds"][0] == 5000
    assert got["reported"][0] == pytest.approx(0.001) and got["reported"][1][0] == 5000
    assert got["reported"][2] == got["freeze_count"] > 1000
    assert got["before_listed"] is False  # frozen objects are out of the collector's view
    assert got["collected_after"] >= 100  # garbage made later is still collected


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"switch_interval_s": 0.0}, "switch_interval_s"),
        ({"switch_interval_s": 1.0}, "switch_interval_s"),
        ({"gen0_threshold": 10}, "gen0_threshold"),
    ],
)
def test_bad_settings_are_rejected_before_anything_changes(
    kwargs: dict[str, float], needle: str
) -> None:
    before = sys.getswitchinterval()
    with pytest.raises(ValueError, match=needle):
        tune_for_latency(**kwargs)  # type: ignore[arg-type]
    assert sys.getswitchinterval() == before
