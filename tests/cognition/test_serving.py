"""The observe queryable: reflex answers on the receiving thread, the rest on workers."""

from __future__ import annotations

import threading

from emily.bus import Keys
from emily.bus.endpoints import OBSERVE
from emily.bus.rpc import call
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from emily.bus.schemas.memory import RecallRequest
from tests.cognition.conftest import RunningCognition

OBSERVE_KEY = OBSERVE.key(Keys("test"))


def test_reflex_answers_while_every_worker_waits_on_an_injected_slow_memory(
    cognition: RunningCognition, injected_slow_memory: list[RecallRequest]
) -> None:
    """Five cycles need memory, which (a fault injected on purpose) answers only after
    3 s; each waits for its 0.5 s recall deadline, holding all four workers. The reflex
    is answered before any of them finishes: it never queues behind them."""
    done: list[ObserveReply] = []
    lock = threading.Lock()

    def slow_cycle(i: int) -> None:
        req = ObserveRequest(text=f"what did the plumber say about boiler {i}", allow_llm=False)
        reply = call(cognition.client, OBSERVE_KEY, req, ObserveReply, timeout_s=30)
        with lock:
            done.append(reply)

    threads = [threading.Thread(target=slow_cycle, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    while len(injected_slow_memory) < 4:  # every worker is now waiting on memory
        threading.Event().wait(0.005)
    reflex = call(cognition.client, OBSERVE_KEY, ObserveRequest(text="hello"), ObserveReply)
    with lock:
        finished_first = len(done)
    for t in threads:
        t.join(30)
    assert reflex.trace.tier == "reflex"
    assert finished_first == 0, "the reflex waited for a worker"
    assert len(done) == 5 and all("memory" in r.trace.missing for r in done)
