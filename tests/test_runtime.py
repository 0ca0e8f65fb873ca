"""Process-level tuning: run in a child process, so this test process keeps its defaults."""

from __future__ import annotations

import json
import select
import signal
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


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_wait_for_stop_returns_the_signal(sig: str) -> None:
    """The child ignores the signal until wait_for_stop installs its handler, and the
    parent repeats it until the child answers, so neither side races the other."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, threading, time\n"
            "from emily.runtime import wait_for_stop\n"
            f"signal.signal(signal.{sig}, signal.SIG_IGN)\n"
            "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
            "print('ready', flush=True)\n"
            "print(wait_for_stop(0.05), flush=True)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    # Repeat the signal until the child answers, then stop: a signal that lands after
    # the answer, while the interpreter is shutting down and has put the default
    # handlers back, would kill the child and say nothing about wait_for_stop.
    for _ in range(300):
        child.send_signal(getattr(signal, sig))
        readable, _, _ = select.select([child.stdout], [], [], 0.1)
        if readable:
            break
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 0
    assert int(out.strip()) == int(getattr(signal, sig))
