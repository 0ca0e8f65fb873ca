"""Request/reply over Zenoh queryables, with schema validation on both ends.

A server never crashes on a bad payload: it answers with an :class:`ErrorReply` that
names the problem. Handlers run on a bounded worker pool, not on Zenoh's callback
thread, so a slow request (an LLM generation) does not stall the bus. A handler may
return one message, or an iterator of messages to stream (one reply per chunk).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import zenoh

from emily.bus.messages import ErrorReply, Message, decode, encode
from emily.errors import BusError, PayloadError

log = logging.getLogger(__name__)
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
Handler = Callable[[Req], Message | Iterable[Message]]
#: Largest request payload a :class:`Server` accepts unless told otherwise (bytes).
DEFAULT_MAX_BYTES = 1 << 20


class RequestFailed(BusError):
    """The server answered with an :class:`ErrorReply`; it is kept in :attr:`reply`."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(f"{reply.code}: {reply.message}")
        self.reply = reply


def internal_error(exc: BaseException) -> ErrorReply:
    """The ``internal`` reply for a handler that raised ``exc`` (its type and message)."""
    return ErrorReply(code="internal", message=f"{type(exc).__name__}: {exc}")


def _reply_error(query: zenoh.Query, exc: BaseException, key: str) -> None:
    """Answer ``query`` with the :class:`ErrorReply` that ``exc`` stands for."""
    if isinstance(exc, PayloadError):
        reply = ErrorReply(code="bad_request", message=str(exc))
    elif isinstance(exc, RequestFailed):
        reply = exc.reply
    else:
        log.error("handler for %s failed", key, exc_info=exc)
        reply = internal_error(exc)
    query.reply_err(encode(reply))


@dataclass(frozen=True)
class Continuation:
    """The rest of a request after :class:`Server`'s ``first`` step.

    Attributes
    ----------
    reply : computes the reply: one message, or an iterator of them to stream.
    inline : run ``reply`` on the Zenoh thread that delivered the query (``True``) or
        hand it to a worker (``False``).
    after : called once the reply has been sent or has failed, wherever it ran: work
        the request caused that must not delay its reply.
    """

    reply: Callable[[], Message | Iterable[Message]]
    inline: bool = False
    after: Callable[[], None] | None = None


class Server:
    """One queryable bound to a handler, served by a worker pool.

    Parameters
    ----------
    session : open Zenoh session.
    key : key expression to serve (``RECALL.key(keys)``; see :mod:`emily.bus.endpoints`).
    request_model : the :class:`Message` subclass requests must validate against.
    handler : called with the validated request; returns a message or an iterator of them.
    workers : worker threads; requests beyond them wait in the pool's queue.
    inline : predicate on the decoded request: ``True`` serves it on the Zenoh thread
        that delivered it, without a hand-off to a worker (for short handlers that never
        wait on I/O, such as a recall from the in-memory tier). With a predicate, every
        request is decoded on the Zenoh thread.
    batch : serves the requests that are not inline in batches: called with the
        requests waiting when a worker gets to them (up to ``max_batch``, in arrival
        order), it returns one reply per request, in the same order; an
        :class:`ErrorReply` in that list is sent as that request's error. Under load,
        requests that arrive while the workers are busy share one pass (one index
        search, one database round trip); alone, a request is a batch of one.
    max_batch : most requests per ``batch`` call.
    max_bytes : largest request payload accepted; a larger one gets ``bad_request``
        before it is parsed.
    first : replaces ``handler`` for requests whose cost is known only after a first,
        fast step: called on the Zenoh thread with the decoded request, it returns a
        :class:`Continuation` that says whether the rest runs there too or on a worker
        (a cognitive cycle whose reflex answers is done at once; one that needs memory
        and the LLM is not). ``inline`` and ``batch`` do not apply with it.
    """

    def __init__(
        self,
        session: zenoh.Session,
        key: str,
        request_model: type[Req],
        handler: Handler[Req] | None = None,
        *,
        workers: int = 4,
        inline: Callable[[Req], bool] | None = None,
        batch: Callable[[list[Req]], list[Message]] | None = None,
        max_batch: int = 32,
        max_bytes: int = DEFAULT_MAX_BYTES,
        first: Callable[[Req], Continuation] | None = None,
    ) -> None:
        if (handler is None) == (first is None):
            raise ValueError("give a Server exactly one of handler and first")
        self.key = key
        self._model: type[Message] = request_model
        self._handler: Callable[[Any], Message | Iterable[Message]] | None = handler
        self._first: Callable[[Any], Continuation] | None = first
        self._inline: Callable[[Any], bool] | None = None if first else inline
        self._batch: Callable[[list[Any]], list[Message]] | None = None if first else batch
        self._max_batch = max(1, max_batch)
        self._max_bytes = max_bytes
        self._pending: deque[tuple[zenoh.Query, Message]] = deque()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"rpc:{key}")
        self._lock = threading.Lock()
        self._closed = False
        self._queryable = session.declare_queryable(key, self._on_query)

    def _on_query(self, query: zenoh.Query) -> None:
        with self._lock:
            if self._closed:
                self._refuse_closing(query)
                return
            if self._inline is None and self._batch is None and self._first is None:
                self._pool.submit(self._serve, query)
                return
        try:
            request = self._decode(query)
            step = self._first(request) if self._first is not None else self._step(request)
        except Exception as exc:
            _reply_error(query, exc, self.key)
            query.drop()
            return
        if self._batch is not None and not step.inline:
            with self._lock:
                if self._closed:
                    self._refuse_closing(query)
                    return
                self._pending.append((query, request))
                self._pool.submit(self._serve_pending)
            return
        if step.inline:
            self._serve(query, step)
        elif not self._submit(self._serve, query, step):
            try:
                self._refuse_closing(query)
            finally:
                if step.after is not None:
                    step.after()

    def _refuse_closing(self, query: zenoh.Query) -> None:
        """Answer ``unavailable`` (a query is always answered, never dropped silently)."""
        try:
            closing = ErrorReply(code="unavailable", message=f"{self.key} is shutting down")
            query.reply_err(encode(closing))
        finally:
            query.drop()

    def _step(self, request: Message) -> Continuation:
        handler = self._handler
        assert handler is not None
        inline = self._inline is not None and self._inline(request)
        return Continuation(reply=lambda: handler(request), inline=inline)

    def _submit(self, fn: Callable[..., None], *args: Any) -> bool:
        """Hand ``fn(*args)`` to a worker; ``False`` when the server is closing."""
        with self._lock:
            if self._closed:
                return False
            self._pool.submit(fn, *args)
            return True

    def _serve_pending(self) -> None:
        """Serve what is waiting, up to ``max_batch`` (nothing if others took it)."""
        items: list[tuple[zenoh.Query, Message]] = []
        while len(items) < self._max_batch:
            try:
                items.append(self._pending.popleft())
            except IndexError:
                break
        if not items:
            return
        assert self._batch is not None
        try:
            results = self._batch([request for _, request in items])
            if len(results) != len(items):
                raise RuntimeError(f"{len(results)} replies for {len(items)} requests")
        except RequestFailed as exc:
            results = [exc.reply] * len(items)
        except Exception as exc:  # the server keeps serving whatever one batch does
            log.exception("batch handler for %s failed", self.key)
            results = [internal_error(exc)] * len(items)
        for (query, _), result in zip(items, results, strict=True):
            try:
                if isinstance(result, ErrorReply):
                    query.reply_err(encode(result))
                else:
                    query.reply(query.key_expr, encode(result))
            finally:
                query.drop()

    def _decode(self, query: zenoh.Query) -> Message:
        payload = query.payload.to_bytes() if query.payload is not None else b"{}"
        if len(payload) > self._max_bytes:
            raise PayloadError(
                f"payload of {len(payload):,} bytes is over the {self._max_bytes:,}-byte "
                f"limit of {self.key}; send less per request"
            )
        return decode(self._model, payload)

    def _serve(self, query: zenoh.Query, step: Continuation | None = None) -> None:
        try:
            if step is None:
                step = self._step(self._decode(query))
            result = step.reply()
            messages: Iterable[Message] = [result] if isinstance(result, Message) else result
            for message in messages:
                query.reply(query.key_expr, encode(message))
        except Exception as exc:  # the server keeps serving whatever one handler does
            _reply_error(query, exc, self.key)
        finally:
            query.drop()
            if step is not None and step.after is not None:
                step.after()

    def close(self) -> None:
        """Stop accepting queries and wait for in-flight ones to finish."""
        with self._lock:
            self._closed = True
        self._queryable.undeclare()
        self._pool.shutdown(wait=True)


def wait_for_server(session: zenoh.Session, key: str, *, timeout_s: float = 10.0) -> bool:
    """Block until some queryable matches ``key`` (True), or ``timeout_s`` passes (False).

    A queryable declared by another process becomes visible after a short propagation
    delay; clients call this at start-up instead of sleeping for a guessed time.
    """
    querier = session.declare_querier(key)
    try:
        deadline = time.monotonic() + timeout_s
        # zenoh's stubs type matching_status as bool; at run time it is a MatchingStatus
        while not getattr(querier.matching_status, "matching"):  # noqa: B009
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True
    finally:
        querier.undeclare()


def _zid(replier: object) -> str | None:
    """The session (process) part of a replier's id, ``None`` when the reply has none."""
    return None if replier is None else str(getattr(replier, "zid", replier))


def stream(
    session: zenoh.Session,
    key: str,
    request: Message,
    response_model: type[Resp],
    *,
    timeout_s: float = 10.0,
) -> Iterator[Resp]:
    """Send ``request`` and yield every validated reply of one server, in arrival order.

    The first server to reply is the one that answers; replies from any other server
    matching ``key`` are dropped and logged as errors.

    Raises
    ------
    RequestFailed
        The server replied with an :class:`ErrorReply`.
    BusError
        No server answered within ``timeout_s`` seconds.
    """
    replies = session.get(
        key,
        payload=encode(request),
        timeout=timeout_s,
        consolidation=zenoh.ConsolidationMode.NONE,
    )
    replier: str | None = None
    first_zid: str | None = None
    for reply in replies:
        who = str(reply.replier_id) if reply.replier_id is not None else ""
        if replier is None:
            replier, first_zid = who, _zid(reply.replier_id)
        elif who != replier:
            # one answer comes from one server: a second replier's text is never spliced
            # into it (a rogue peer declaring the same key gets nothing through)
            other = _zid(reply.replier_id)
            anonymous_data = other is None and reply.ok is not None
            if anonymous_data or (other is not None and other != first_zid):
                log.error(
                    "%s: ignored a reply from a second replier %s (answering: %s)",
                    key,
                    who,
                    replier or "?",
                )
            else:
                # the answering session's own late reply (entity 0), or the querier's
                # own timeout marker (no replier id) after a reply that came just in time
                log.debug("%s: ignored a late reply from %s after the answer", key, who or "?")
            continue
        if reply.ok is not None:
            yield decode(response_model, reply.ok.payload.to_bytes())
        else:
            raw = reply.err.payload.to_bytes() if reply.err is not None else b""
            try:
                err = decode(ErrorReply, raw)
            except PayloadError:
                err = ErrorReply(code="unavailable", message=raw.decode(errors="replace"))
            raise RequestFailed(err)
    if replier is None:
        raise BusError(f"no reply on {key} within {timeout_s:g} s: is that service running?")


def call(
    session: zenoh.Session,
    key: str,
    request: Message,
    response_model: type[Resp],
    *,
    timeout_s: float = 10.0,
) -> Resp:
    """Send ``request`` and return the single validated reply (see :func:`stream`)."""
    replies = list(stream(session, key, request, response_model, timeout_s=timeout_s))
    if len(replies) != 1:
        raise BusError(f"{key} sent {len(replies)} replies where one was expected")
    return replies[0]
