"""The running service: its reflex's spikes on the bus and /metrics, and feedback that
is learned and kept across a restart."""

from __future__ import annotations

import json
import queue
import re
import urllib.request
from pathlib import Path

from emily.bus import Keys
from emily.bus.endpoints import NEURAL_SPIKES, OBSERVE
from emily.bus.messages import decode
from emily.bus.rpc import call
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from emily.bus.schemas.neural import SpikeEvent
from emily.cognition.reflex import Reflex
from tests.cognition.conftest import RunningCognition, start_cognition

KEYS = Keys("test")
DASHBOARD = Path(__file__).parents[2] / "modules/monitoring/dashboards/neural.json"


def metrics(running: RunningCognition) -> str:
    assert running.service.http is not None
    with urllib.request.urlopen(f"{running.service.http.url}/metrics", timeout=30) as resp:
        text: str = resp.read().decode()
    return text


def sample(text: str, name: str) -> float:
    found = re.search(rf'^{name}\{{[^}}]*source="reflex"[^}}]*\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def observe(running: RunningCognition, request: ObserveRequest) -> ObserveReply:
    return call(running.client, OBSERVE.key(KEYS), request, ObserveReply, timeout_s=60)


def test_a_cycle_moves_the_neural_counters_and_publishes_a_spike_event(
    cognition: RunningCognition,
) -> None:
    got: queue.Queue[bytes] = queue.Queue()
    sub = cognition.client.declare_subscriber(
        NEURAL_SPIKES.key(KEYS), lambda s: got.put(s.payload.to_bytes())
    )
    try:
        before = metrics(cognition)
        event = None
        # the subscriber may need a moment to be known to the service's peer
        for _ in range(40):
            observe(cognition, ObserveRequest(text="what is the weather like on mars"))
            try:
                event = decode(SpikeEvent, got.get(timeout=0.25))
                break
            except queue.Empty:
                continue
        assert event is not None, "no spike event arrived from the running service"
        assert event.source == "reflex" and event.samples >= 1
        assert event.energy_label == "modelled" and event.energy_pj_per_inference > 0
        # both stages ran: the n-gram stage's spikes are accumulates, MiniLM's
        # real-valued features are multiply-accumulates (T x 768 x hidden per decision)
        assert event.sop > 0 and event.mac > 0 and event.mac % (768 * 128) == 0
        after = metrics(cognition)
        for name in (
            "emily_neural_spikes_total",
            "emily_neural_synaptic_ops_total",
            "emily_neural_macs_total",
            "emily_neural_inferences_total",
            "emily_neural_modelled_energy_picojoules_total",
        ):
            assert sample(after, name) > sample(before, name), name
        assert sample(after, "emily_neural_modelled_energy_picojoules_per_inference") > 0
        # every reflex series the neural dashboard charts is exported (MoE ones are not:
        # no MoE runs in the service)
        charted = set(re.findall(r"emily_neural_[a-z_]+", DASHBOARD.read_text()))
        for name in sorted(n for n in charted if "_moe_" not in n):
            assert re.search(rf"^{name}\{{", after, re.M), f"{name} is not on /metrics"
    finally:
        sub.undeclare()


def test_feedback_over_the_bus_is_learned_traced_and_kept_across_a_restart(
    private_reflex: Reflex, tmp_path: Path
) -> None:
    ask = ObserveRequest(text="quux zorb the flibbet", session="s", allow_llm=False)
    running = start_cognition(private_reflex, http=True)
    try:
        first = observe(running, ask)
        for _ in range(4):
            reply = observe(running, ask)
            fb = observe(running, ObserveRequest(feedback="bad", feedback_for=reply.trace.cycle_id))
            assert fb.action == "acknowledge" and fb.trace.policy == reply.trace.policy
        # a second vote about the same answer is acknowledged, not counted
        again = observe(running, ObserveRequest(feedback="bad", feedback_for=reply.trace.cycle_id))
        assert again.response == "Already noted."
        # no feedback_for: the session's last answer
        observe(running, ask)
        observe(running, ObserveRequest(feedback="bad", session="s"))
        learned = running.service.cognition.learner.snapshot()
        assert learned["updates"] == 5
        text = metrics(running)
        assert re.search(
            r'^emily_cognition_learning_updates_total\{source="feedback"\} 5', text, re.M
        )
    finally:
        running.close()
    saved = json.loads(next(Path(tmp_path).rglob("cognition/learning.json")).read_text())
    assert saved["updates"] == 5
    running = start_cognition(private_reflex, http=False)
    try:
        assert running.service.cognition.learner.snapshot() == learned
        later = observe(running, ask)
        g0 = {s.policy: s.G for s in first.trace.policies}
        g1 = {s.policy: s.G for s in later.trace.policies}
        policy = first.trace.policy
        assert g1[policy] > g0[policy]
    finally:
        running.close()
