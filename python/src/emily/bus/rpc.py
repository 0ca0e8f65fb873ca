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
from typing import Any, TypeVar

import zenoh

from emily.bus.messages import ErrorReply, Message, decode, encode
from emily.errors import BusError, PayloadError

log = logging.getLogger(__name__)
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
Handler = Callable[[Req], Message | Iterable[Message]]


class RequestFailed(BusError):
    """The server answered with an :class:`ErrorReply`; it is kept in :attr:`reply`."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(f"{reply.code}: {reply.message}")
        self.reply = reply


def internal_error(exc: BaseException) -> ErrorReply:
    """The ``internal`` reply for a handler that raised ``exc`` (its type and message)."""
    return ErrorReply(code="internal", message=f"{type(exc).__name__}: {exc}")


class Server:
    """One queryable bound to a handler, served by a worker pool.

    Parameters
    ----------
    session : open Zenoh session.
    key : key expression to serve (``Keys.query("memory", "recall")``).
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
    """

    def __init__(
        self,
        session: zenoh.Session,
        key: str,
        request_model: type[Req],
        handler: Handler[Req],
        *,
        workers: int = 4,
        inline: Callable[[Req], bool] | None = None,
        batch: Callable[[list[Req]], list[Message]] | None = None,
        max_batch: int = 32,
    ) -> None:
        self.key = key
        self._model: type[Message] = request_model
        self._handler: Callable[[Any], Message | Iterable[Message]] = handler
        self._inline: Callable[[Any], bool] | None = inline
        self._batch: Callable[[list[Any]], list[Message]] | None = batch
        self._max_batch = max(1, max_batch)
        self._pending: deque[tuple[zenoh.Query, Message]] = deque()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"rpc:{key}")
        self._lock = threading.Lock()
        self._closed = False
        self._queryable = session.declare_queryable(key, self._on_query)

    def _on_query(self, query: zenoh.Query) -> None:
        with self._lock:
            if self._closed:
                query.drop()
                return
            if self._inline is None and self._batch is None:
                self._pool.submit(self._serve, query)
                return
        try:
            request = self._decode(query)
        except PayloadError as exc:
            query.reply_err(encode(ErrorReply(code="bad_request", message=str(exc))))
            query.drop()
            return
        if self._inline is not None and self._inline(request):
            self._serve(query, request)
            return
        with self._lock:
            if self._closed:
                query.drop()
                return
            if self._batch is None:
                self._pool.submit(self._serve, query, request)
            else:
                self._pending.append((query, request))
                self._pool.submit(self._serve_pending)

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
        return decode(self._model, payload)

    def _serve(self, query: zenoh.Query, request: Message | None = None) -> None:
        try:
            if request is None:
                request = self._decode(query)
            result = self._handler(request)
            messages: Iterable[Message] = [result] if isinstance(result, Message) else result
            for message in messages:
                query.reply(query.key_expr, encode(message))
        except PayloadError as exc:
            query.reply_err(encode(ErrorReply(code="bad_request", message=str(exc))))
        except RequestFailed as exc:
            query.reply_err(encode(exc.reply))
        except Exception as exc:  # the server keeps serving whatever one handler does
            log.exception("handler for %s failed", self.key)
            query.reply_err(encode(internal_error(exc)))
        finally:
            query.drop()

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


def stream(
    session: zenoh.Session,
    key: str,
    request: Message,
    response_model: type[Resp],
    *,
    timeout_s: float = 10.0,
) -> Iterator[Resp]:
    """Send ``request`` and yield every validated reply in arrival order.

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
    answered = False
    for reply in replies:
        answered = True
        if reply.ok is not None:
            yield decode(response_model, reply.ok.payload.to_bytes())
        else:
            raw = reply.err.payload.to_bytes() if reply.err is not None else b""
            try:
                err = decode(ErrorReply, raw)
            except PayloadError:
                err = ErrorReply(code="unavailable", message=raw.decode(errors="replace"))
            raise RequestFailed(err)
    if not answered:
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
