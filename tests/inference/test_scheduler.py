"""The bounded queue on the real model: busy, queue timeout, deadline, cancellation, close.

Each test builds its own small :class:`Scheduler` (with its own llama.cpp context) on the
shared engine, one slot unless the test is about slots, with long ``ignore_eos``
generations standing in for slow requests; they are cancelled as soon as the point is
made.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emily.bus.schemas.inference import GenerateRequest
from emily.inference.engine import Engine, Plan
from emily.inference.errors import Busy, QueueTimeout, Unavailable
from emily.inference.metrics import InferenceMetrics
from emily.inference.scheduler import Done, EventQueue, Failed, Job, Piece, Scheduler
from tests.fixtures.llm import RunningInference

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine(inference_service: RunningInference) -> Engine:
    return inference_service.service.engine


def make(engine: Engine, **overrides: float) -> Scheduler:
    overrides.setdefault("slots", 1)
    config = dataclasses.replace(engine.config, **overrides)  # type: ignore[arg-type]
    return Scheduler(engine, config, InferenceMetrics())


@pytest.fixture
def small(engine: Engine) -> Iterator[Scheduler]:
    s = make(engine, queue_size=1, queue_timeout_s=60.0)
    yield s
    s.close()


def long_plan(engine: Engine, n: int = 800) -> Plan:
    return engine.plan("Count:", GenerateRequest(prompt="x", max_tokens=n, ignore_eos=True))


def wait_running(s: Scheduler, job: Job) -> None:
    deadline = time.monotonic() + 30
    while job.id not in s._running and time.monotonic() < deadline:
        time.sleep(0.005)
    assert job.id in s._running


def last(events: EventQueue) -> Piece | Done | Failed:
    seen = list(events)
    assert seen
    return seen[-1]


def test_full_queue_is_busy_at_once_with_retry_after(engine: Engine, small: Scheduler) -> None:
    a, b = EventQueue(), EventQueue()
    running = small.submit(long_plan(engine), a, request_id="a")
    wait_running(small, running)
    small.submit(long_plan(engine), b, request_id="b")
    t0 = time.monotonic()
    with pytest.raises(Busy, match="queue is full") as info:
        small.submit(long_plan(engine), EventQueue())
    assert time.monotonic() - t0 < 5  # refused, not left hanging (a generous bound)
    assert info.value.retry_after_s >= 1
    assert small.metrics.rejections.labels("busy")._value.get() == 1
    assert small.cancel("b") and small.cancel("a")
    assert isinstance(done := last(b), Done) and done.finish_reason == "cancelled"
    assert done.completion_tokens == 0
    assert isinstance(done := last(a), Done) and done.finish_reason == "cancelled"


def test_cancelling_a_queued_request_frees_its_slot(engine: Engine, small: Scheduler) -> None:
    a = EventQueue()
    running = small.submit(long_plan(engine), a, request_id="a")
    wait_running(small, running)
    small.submit(long_plan(engine), EventQueue(), request_id="b")
    with pytest.raises(Busy):
        small.submit(long_plan(engine), EventQueue(), request_id="c")
    assert small.cancel("b")
    assert small.depth == 0
    small.submit(long_plan(engine, 2), EventQueue(), request_id="c")  # the freed slot
    assert small.cancel("a")
    assert not small.cancel("nope")


def test_cancelled_running_request_stops_early(engine: Engine, small: Scheduler) -> None:
    events = EventQueue()
    job = small.submit(long_plan(engine), events)
    it = iter(events)
    assert isinstance(next(it), Piece)
    job.cancel()
    rest = list(it)
    done = rest[-1]
    assert isinstance(done, Done) and done.finish_reason == "cancelled"
    assert 0 < done.completion_tokens < 800


def test_request_waiting_too_long_gets_queue_timeout(engine: Engine) -> None:
    s = make(engine, queue_size=2, queue_timeout_s=0.3)
    try:
        a, b = EventQueue(), EventQueue()
        running = s.submit(long_plan(engine), a, request_id="a")
        wait_running(s, running)
        s.submit(long_plan(engine), b, request_id="b")
        failed = last(b)
        assert isinstance(failed, Failed) and isinstance(failed.error, QueueTimeout)
        assert "queue_timeout_s" in str(failed.error)
        assert s.metrics.rejections.labels("timeout")._value.get() == 1
        assert s.depth == 0
        s.cancel("a")
        last(a)
    finally:
        s.close()


def test_request_deadline_ends_generation_with_timeout(engine: Engine) -> None:
    s = make(engine, request_timeout_s=0.5)
    try:
        events = EventQueue()
        s.submit(long_plan(engine), events)
        done = last(events)
        assert isinstance(done, Done) and done.finish_reason == "timeout"
        assert done.completion_tokens < 800
    finally:
        s.close()


def test_duplicate_request_id_is_refused(engine: Engine, small: Scheduler) -> None:
    a = EventQueue()
    small.submit(long_plan(engine), a, request_id="same")
    with pytest.raises(Exception, match="already in use"):
        small.submit(long_plan(engine), EventQueue(), request_id="same")
    small.cancel("same")
    last(a)


def test_close_fails_waiting_requests_and_refuses_new_ones(engine: Engine) -> None:
    s = make(engine, queue_size=2)
    a, b = EventQueue(), EventQueue()
    running = s.submit(long_plan(engine), a)
    wait_running(s, running)
    s.submit(long_plan(engine), b)
    s.close()
    failed = last(b)
    assert isinstance(failed, Failed) and isinstance(failed.error, Unavailable)
    done = last(a)
    assert isinstance(done, Done) and done.finish_reason == "cancelled"
    with pytest.raises(Unavailable, match="shutting down"):
        s.submit(long_plan(engine), EventQueue())


def test_metrics_follow_a_finished_request(engine: Engine) -> None:
    s = make(engine)
    try:
        events = EventQueue()
        s.submit(long_plan(engine, 4), events, api="test")
        done = last(events)
        assert isinstance(done, Done) and done.completion_tokens == 4
        m = s.metrics
        assert m.generated_tokens._value.get() == 4
        assert m.prompt_tokens._value.get() == done.prompt_tokens
        assert m.tokens_per_second._value.get() > 0
        assert m.requests.labels("test", "length")._value.get() == 1
        assert done.ttft_ms is not None and 0 < done.ttft_ms <= done.latency_ms
    finally:
        s.close()


def test_slots_run_together_and_the_next_request_takes_a_freed_slot(engine: Engine) -> None:
    s = make(engine, slots=2, queue_size=1)
    try:
        a, b, c = EventQueue(), EventQueue(), EventQueue()
        ja = s.submit(long_plan(engine), a, request_id="a")
        jb = s.submit(long_plan(engine), b, request_id="b")
        wait_running(s, ja)
        wait_running(s, jb)
        assert isinstance(next(iter(a)), Piece) and isinstance(next(iter(b)), Piece)
        jc = s.submit(long_plan(engine, 3), c, request_id="c")  # queued: both slots busy
        assert s.depth == 1 and s.running == 2
        assert s.metrics.slots_busy._value.get() == 2
        with pytest.raises(Busy, match="all 2 slots are busy"):
            s.submit(long_plan(engine), EventQueue())
        assert s.cancel("a")
        done = last(c)  # c ran in a's slot while b kept going
        assert isinstance(done, Done) and done.completion_tokens == 3
        assert jb.id in s._running and jc.id not in s._running
        assert s.cancel("b")
        assert isinstance(done := last(b), Done) and done.finish_reason == "cancelled"
    finally:
        s.close()


def test_a_burst_up_to_slots_plus_queue_is_admitted(engine: Engine) -> None:
    s = make(engine, slots=2, queue_size=1)
    try:
        queues = [EventQueue() for _ in range(3)]
        for i, q in enumerate(queues):  # faster than the worker admits them
            s.submit(long_plan(engine), q, request_id=f"burst-{i}")
        with pytest.raises(Busy):
            s.submit(long_plan(engine), EventQueue())
        for i in range(3):
            s.cancel(f"burst-{i}")
        assert all(isinstance(last(q), Done) for q in queues)
    finally:
        s.close()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=1, max_size=12))
def test_capacity_is_never_exceeded_and_every_request_ends_once(
    engine: Engine, ops: list[tuple[bool, int]]
) -> None:
    s = make(engine, slots=2, queue_size=2)
    sinks: dict[str, EventQueue] = {}
    try:
        for submit, k in ops:
            if submit:
                rid = f"r{len(sinks)}"
                try:
                    s.submit(
                        long_plan(engine, 1 + k),
                        sinks.setdefault(rid, EventQueue()),
                        request_id=rid,
                    )
                except Busy:
                    del sinks[rid]
                    assert s.running + s.depth >= 2  # refused only when it was really full
            elif sinks:
                s.cancel(sorted(sinks)[k % len(sinks)])
            assert s.running <= 2 and s.running + s.depth <= 4
        for q in sinks.values():
            seen = list(q)  # ends with exactly one Done or Failed
            assert isinstance(seen[-1], Done | Failed)
            assert not any(isinstance(e, Done | Failed) for e in seen[:-1])
    finally:
        s.close()
