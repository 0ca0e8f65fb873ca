"""One model, a bounded queue: admission, queue timeouts, request deadlines, cancellation.

At most one request runs on the engine; at most ``queue_size`` more wait. A request
beyond that is refused at once with :class:`Busy` (and a retry-after estimate) instead of
hanging. A request that waits longer than ``queue_timeout_s`` gets :class:`QueueTimeout`;
one that runs past ``request_timeout_s`` ends with ``finish_reason="timeout"``. Cancelling
a queued request removes it from the queue; cancelling a running one stops it after the
current token. Either way the slot is free for the next request.

Results go to a ``sink`` callable, called on the worker thread with :class:`Piece`,
then one :class:`Done` or :class:`Failed`; :class:`EventQueue` turns them into a blocking
iterator.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from emily.bus.schemas.inference import FinishReason
from emily.inference.config import InferenceConfig
from emily.inference.engine import Engine, Outcome, Plan
from emily.inference.errors import BadRequest, Busy, InferenceError, QueueTimeout, Unavailable
from emily.inference.metrics import InferenceMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Piece:
    """Generated text."""

    text: str


@dataclass(frozen=True)
class Done:
    """The request finished (times in ms, counts in tokens)."""

    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float | None
    latency_ms: float


@dataclass(frozen=True)
class Failed:
    """The request ended without running (queue timeout, shutdown)."""

    error: InferenceError


Event = Piece | Done | Failed
Sink = Callable[[Event], None]
_ids = itertools.count(1)


@dataclass(eq=False)
class Job:
    """A submitted request; :meth:`Scheduler.cancel` or :meth:`cancel` stops it."""

    id: str
    plan: Plan
    sink: Sink
    api: str
    created: float = field(default_factory=time.monotonic)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Ask for the request to stop; the scheduler frees its slot."""
        self.cancelled.set()


class EventQueue:
    """A thread-safe sink whose events are read back as a blocking iterator."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[Event] = queue.SimpleQueue()

    def __call__(self, event: Event) -> None:
        self._q.put(event)

    def __iter__(self) -> Iterator[Event]:
        while True:
            event = self._q.get()
            yield event
            if not isinstance(event, Piece):
                return


class Scheduler:
    """Runs jobs one at a time on ``engine`` from a bounded FIFO queue.

    Parameters
    ----------
    engine : the loaded model.
    config : queue size and timeouts.
    metrics : collectors to update.
    """

    def __init__(self, engine: Engine, config: InferenceConfig, metrics: InferenceMetrics) -> None:
        self.engine = engine
        self.config = config
        self.metrics = metrics
        self._waiting: deque[Job] = deque()
        self._running: Job | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._mean_latency_s = 1.0
        self._thread = threading.Thread(target=self._loop, name="inference-worker", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Requests waiting now (not counting the running one)."""
        with self._cond:
            return len(self._waiting)

    def submit(
        self, plan: Plan, sink: Sink, *, request_id: str | None = None, api: str = ""
    ) -> Job:
        """Queue ``plan``; raises :class:`Busy` at once when the queue is full."""
        with self._cond:
            if self._closed:
                raise Unavailable("the inference service is shutting down; retry shortly")
            if request_id is not None and self._find(request_id) is not None:
                raise BadRequest(f"request_id {request_id!r} is already in use; pick a fresh one")
            if self._running is not None and len(self._waiting) >= self.config.queue_size:
                self.metrics.rejections.labels("busy").inc()
                retry = round(max(1.0, self._mean_latency_s * (len(self._waiting) + 1)), 1)
                raise Busy(
                    f"the request queue is full ({self.config.queue_size} waiting); "
                    f"retry after {retry:g} s",
                    retry_after_s=retry,
                )
            job = Job(request_id or f"req-{next(_ids)}", plan, sink, api)
            self._waiting.append(job)
            self.metrics.queue_depth.set(len(self._waiting))
            self._cond.notify_all()
            return job

    def _find(self, request_id: str) -> Job | None:
        if self._running is not None and self._running.id == request_id:
            return self._running
        return next((j for j in self._waiting if j.id == request_id), None)

    def cancel(self, request_id: str) -> bool:
        """Cancel a queued or running request; ``False`` if no such request is active."""
        with self._cond:
            job = self._find(request_id)
            if job is None:
                return False
            job.cancel()
            queued = job is not self._running
            if queued:
                self._waiting.remove(job)
                self.metrics.queue_depth.set(len(self._waiting))
        if queued:
            self._finish_unrun(job, "cancelled")
        return True

    def _finish_unrun(self, job: Job, reason: FinishReason) -> None:
        latency = (time.monotonic() - job.created) * 1e3
        self.metrics.requests.labels(job.api, reason).inc()
        job.sink(Done(reason, len(job.plan.tokens), 0, None, latency))

    def _expire_waiting(self) -> None:
        """Fail queued jobs that waited longer than the queue timeout, or were cancelled."""
        now = time.monotonic()
        with self._cond:
            expired = [
                j
                for j in self._waiting
                if now - j.created > self.config.queue_timeout_s or j.cancelled.is_set()
            ]
            for j in expired:
                self._waiting.remove(j)
            self.metrics.queue_depth.set(len(self._waiting))
        for j in expired:
            if j.cancelled.is_set():
                self._finish_unrun(j, "cancelled")
                continue
            self.metrics.rejections.labels("timeout").inc()
            waited = now - j.created
            j.sink(
                Failed(
                    QueueTimeout(
                        f"waited {waited:.1f} s in the queue (limit {self.config.queue_timeout_s:g}"
                        " s) behind longer requests; retry, or raise [inference] queue_timeout_s"
                    )
                )
            )

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait(timeout=1.0)
                if self._closed and not self._waiting:
                    return
            self._expire_waiting()
            with self._cond:
                if not self._waiting:
                    continue
                job = self._running = self._waiting.popleft()
                self.metrics.queue_depth.set(len(self._waiting))
            try:
                self._run(job)
            except Exception as exc:  # the worker survives whatever one request does
                log.exception("generation %s failed", job.id)
                job.sink(Failed(InferenceError(f"generation failed: {type(exc).__name__}: {exc}")))
            finally:
                with self._cond:
                    self._running = None

    def _run(self, job: Job) -> None:
        deadline = job.created + self.config.request_timeout_s
        outcome = Outcome()
        first: float | None = None
        last_sweep = time.monotonic()

        def should_stop() -> FinishReason | None:
            nonlocal last_sweep
            now = time.monotonic()
            if now - last_sweep > 0.05:  # queued requests time out while this one runs
                last_sweep = now
                self._expire_waiting()
            if job.cancelled.is_set():
                return "cancelled"
            return "timeout" if now > deadline else None

        started = time.monotonic()
        if job.cancelled.is_set():
            self._finish_unrun(job, "cancelled")
            return
        with self.engine.lock:
            for text in self.engine.generate(job.plan, outcome, should_stop):
                if first is None:
                    first = time.monotonic()
                job.sink(Piece(text))
        end = time.monotonic()
        m = self.metrics
        latency = end - job.created
        ttft = None if first is None else first - job.created
        m.latency.observe(latency)
        if ttft is not None:
            m.ttft.observe(ttft)
        m.prompt_tokens.inc(len(job.plan.tokens))
        m.generated_tokens.inc(outcome.completion_tokens)
        if outcome.completion_tokens and end > started:
            m.tokens_per_second.set(outcome.completion_tokens / (end - started))
        m.requests.labels(job.api, outcome.finish_reason).inc()
        self._mean_latency_s = 0.8 * self._mean_latency_s + 0.2 * latency
        job.sink(
            Done(
                outcome.finish_reason,
                len(job.plan.tokens),
                outcome.completion_tokens,
                None if ttft is None else ttft * 1e3,
                latency * 1e3,
            )
        )

    def close(self) -> None:
        """Refuse new requests, cancel the waiting ones, and stop the worker."""
        with self._cond:
            self._closed = True
            waiting, self._waiting = list(self._waiting), deque()
            if self._running is not None:
                self._running.cancel()
            self._cond.notify_all()
        for job in waiting:
            job.sink(Failed(Unavailable("the inference service is shutting down; retry shortly")))
        self._thread.join(timeout=30)
