"""Admission in front of the decoder: a bounded queue, timeouts, deadlines, cancellation.

Up to ``slots`` requests run together (:class:`~emily.inference.decoder.Decoder`); at
most ``queue_size`` more wait. A request beyond that is refused at once with
:class:`Busy` (and a retry-after estimate) instead of hanging. A request that waits
longer than ``queue_timeout_s`` gets :class:`QueueTimeout`; one that runs past
``request_timeout_s`` ends with ``finish_reason="timeout"``. Cancelling a queued request
removes it from the queue; cancelling a running one ends it at the next step. Either way
its slot is free for the next request.

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
from emily.inference.decoder import Decoder, Outcome, Request
from emily.inference.engine import Engine, Plan
from emily.inference.errors import BadRequest, Busy, InferenceError, QueueTimeout, Unavailable
from emily.inference.metrics import InferenceMetrics
from emily.inference.sampler import TokenLogprob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Piece:
    """Generated text, and the log-probabilities of its tokens when they were asked for."""

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


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
    """The request ended without running (queue timeout, shutdown) or its decode failed."""

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
    deadline: float
    created: float = field(default_factory=time.monotonic)
    cancelled: threading.Event = field(default_factory=threading.Event)
    started: float | None = None
    first: float | None = None

    def cancel(self) -> None:
        """Ask for the request to stop; the scheduler frees its slot."""
        self.cancelled.set()

    def should_stop(self) -> FinishReason | None:
        """The decoder's check before each step."""
        if self.cancelled.is_set():
            return "cancelled"
        return "timeout" if time.monotonic() > self.deadline else None

    def emit(self, text: str, logprobs: tuple[TokenLogprob, ...]) -> None:
        """Pass generated text on to the sink."""
        if self.first is None:
            self.first = time.monotonic()
        self.sink(Piece(text, logprobs))


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
    """Runs jobs on ``engine``, ``config.slots`` at a time, from a bounded FIFO queue.

    Parameters
    ----------
    engine : the loaded model.
    config : slots, queue size and timeouts.
    metrics : collectors to update.
    """

    def __init__(self, engine: Engine, config: InferenceConfig, metrics: InferenceMetrics) -> None:
        self.engine = engine
        self.config = config
        self.metrics = metrics
        self.decoder = Decoder(engine, config)
        self._waiting: deque[Job] = deque()
        self._running: dict[str, Job] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._mean_latency_s = 1.0
        self._thread = threading.Thread(target=self._loop, name="inference-worker", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Requests waiting now (not counting the running ones)."""
        with self._cond:
            return len(self._waiting)

    @property
    def running(self) -> int:
        """Requests in a slot now."""
        with self._cond:
            return len(self._running)

    def submit(
        self, plan: Plan, sink: Sink, *, request_id: str | None = None, api: str = ""
    ) -> Job:
        """Queue ``plan``; raises :class:`Busy` at once when the queue is full."""
        with self._cond:
            if self._closed:
                raise Unavailable("the inference service is shutting down; retry shortly")
            if request_id is not None and self._find(request_id) is not None:
                raise BadRequest(f"request_id {request_id!r} is already in use; pick a fresh one")
            held = len(self._running) + len(self._waiting)  # admitted or about to be
            if held >= self.config.slots + self.config.queue_size:
                self.metrics.rejections.labels("busy").inc()
                ahead = (held - self.config.slots + 1) / self.config.slots
                retry = round(max(1.0, self._mean_latency_s * ahead), 1)
                raise Busy(
                    f"all {self.config.slots} slots are busy and the queue is full "
                    f"({self.config.queue_size} waiting); retry after {retry:g} s",
                    retry_after_s=retry,
                )
            now = time.monotonic()
            job = Job(
                request_id or f"req-{next(_ids)}",
                plan,
                sink,
                api,
                deadline=now + self.config.request_timeout_s,
                created=now,
            )
            self._waiting.append(job)
            self.metrics.queue_depth.set(len(self._waiting))
            self._cond.notify_all()
            return job

    def _find(self, request_id: str) -> Job | None:
        if request_id in self._running:
            return self._running[request_id]
        return next((j for j in self._waiting if j.id == request_id), None)

    def cancel(self, request_id: str) -> bool:
        """Cancel a queued or running request; ``False`` if no such request is active."""
        with self._cond:
            job = self._find(request_id)
            if job is None:
                return False
            job.cancel()
            queued = job.id not in self._running
            if queued:
                self._waiting.remove(job)
                self.metrics.queue_depth.set(len(self._waiting))
            self._cond.notify_all()
        if queued:
            self._finish_unrun(job, "cancelled")
        return True

    def _finish_unrun(self, job: Job, reason: FinishReason) -> None:
        latency = (time.monotonic() - job.created) * 1e3
        self.metrics.requests.labels(job.api, reason).inc()
        job.sink(Done(reason, len(job.plan.tokens), 0, None, latency))

    def _expire_waiting(self) -> None:
        """Fail queued jobs that waited longer than the queue timeout."""
        now = time.monotonic()
        limit = self.config.queue_timeout_s
        with self._cond:
            expired = [j for j in self._waiting if now - j.created > limit]
            for j in expired:
                self._waiting.remove(j)
            self.metrics.queue_depth.set(len(self._waiting))
        for j in expired:
            self.metrics.rejections.labels("timeout").inc()
            j.sink(
                Failed(
                    QueueTimeout(
                        f"waited {now - j.created:.1f} s in the queue (limit {limit:g} s) "
                        "behind longer requests; retry, or raise [inference] queue_timeout_s"
                    )
                )
            )

    def _loop(self) -> None:
        last_sweep = 0.0
        while True:
            with self._cond:
                while not self._waiting and not self._running and not self._closed:
                    self._cond.wait(timeout=1.0)
                if self._closed:
                    break
            now = time.monotonic()
            if now - last_sweep > 0.05:  # queued requests time out while others run
                last_sweep = now
                self._expire_waiting()
            with self._cond:
                hits = self.decoder.prefix_hits
                while self._waiting and self.decoder.free:
                    job = self._waiting.popleft()
                    job.started = time.monotonic()
                    self._running[job.id] = job
                    self.decoder.admit(job)
                self.metrics.prefix_hits.inc(self.decoder.prefix_hits - hits)
                self.metrics.queue_depth.set(len(self._waiting))
                self.metrics.slots_busy.set(len(self._running))
            try:
                ended = self.decoder.step()
            except Exception as exc:  # the worker survives whatever one batch does
                log.exception("decoding failed")
                error = InferenceError(f"generation failed: {type(exc).__name__}: {exc}")
                for request, _ in self.decoder.cancel_all("cancelled"):
                    self._forget(request).sink(Failed(error))
                continue
            for request, outcome in ended:
                self._finished(self._forget(request), outcome)
        for request, outcome in self.decoder.cancel_all("cancelled"):
            self._finished(self._forget(request), outcome)
        self.decoder.close()

    def _forget(self, request: Request) -> Job:
        assert isinstance(request, Job)
        with self._cond:
            self._running.pop(request.id, None)
            self.metrics.slots_busy.set(len(self._running))
        return request

    def _finished(self, job: Job, outcome: Outcome) -> None:
        end = time.monotonic()
        m = self.metrics
        latency = end - job.created
        ttft = None if job.first is None else job.first - job.created
        m.latency.observe(latency)
        if ttft is not None:
            m.ttft.observe(ttft)
        m.prompt_tokens.inc(len(job.plan.tokens))
        m.generated_tokens.inc(outcome.completion_tokens)
        started = job.started or job.created
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
        """Refuse new requests, fail the waiting ones, cancel the running ones, stop."""
        with self._cond:
            self._closed = True
            waiting, self._waiting = list(self._waiting), deque()
            self._cond.notify_all()
        for job in waiting:
            job.sink(Failed(Unavailable("the inference service is shutting down; retry shortly")))
        self._thread.join(timeout=30)
