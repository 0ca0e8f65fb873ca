"""The ``cognition/observe`` queryable: reflex answers inline, everything else on workers.

A cycle whose n-gram reflex fires needs neither memory nor the LLM, and it finishes in
well under a millisecond. It is answered on the Zenoh thread that delivered the query:
no hand-off to a worker thread, no wait behind slow cycles (deliberations can take
seconds). A cycle that needs more continues on a bounded worker pool, so a slow stage
never stalls the bus. Like :class:`emily.bus.rpc.Server`, a bad payload gets an
``ErrorReply`` naming the problem and a failing cycle an ``internal`` error; the server
never crashes.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import zenoh

from emily.bus.messages import ErrorReply, encode
from emily.bus.messages import decode as decode_message
from emily.bus.rpc import internal_error
from emily.bus.schemas.cognition import ObserveRequest
from emily.cognition.cycle import Cognition, Cycle
from emily.errors import PayloadError

log = logging.getLogger(__name__)


class ObserveServer:
    """Serve ``cognition``'s cycle on ``key`` (see the module docstring).

    Parameters
    ----------
    session : open Zenoh session. key : the ``cognition/observe`` key expression.
    cognition : the cycle. workers : threads for cycles the reflex does not answer.
    """

    def __init__(
        self, session: zenoh.Session, key: str, cognition: Cognition, *, workers: int = 4
    ) -> None:
        self.key = key
        self.cognition = cognition
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"rpc:{key}")
        self._lock = threading.Lock()
        self._closed = False
        self._queryable = session.declare_queryable(key, self._on_query)

    def _on_query(self, query: zenoh.Query) -> None:
        with self._lock:
            if self._closed:
                query.drop()  # type: ignore[no-untyped-call]
                return
        handed_off = False
        try:
            payload = query.payload.to_bytes() if query.payload is not None else b"{}"
            cyc = self.cognition.start(decode_message(ObserveRequest, payload))
            if not cyc.result.fired:
                with self._lock:
                    if self._closed:
                        raise RuntimeError("the cognition service is shutting down")
                    self._pool.submit(self._finish, query, cyc)
                handed_off = True
                return
            self._reply(query, cyc)
        except PayloadError as exc:
            query.reply_err(encode(ErrorReply(code="bad_request", message=str(exc))))
        except Exception as exc:  # the server keeps serving whatever one cycle does
            self._fail(query, exc)
        finally:
            if not handed_off:
                query.drop()  # type: ignore[no-untyped-call]

    def _finish(self, query: zenoh.Query, cyc: Cycle) -> None:
        try:
            self._reply(query, cyc)
        except Exception as exc:
            self._fail(query, exc)
        finally:
            query.drop()  # type: ignore[no-untyped-call]

    def _reply(self, query: zenoh.Query, cyc: Cycle) -> None:
        try:
            query.reply(query.key_expr, encode(self.cognition.complete(cyc)))
        finally:
            self.cognition.finish(cyc)  # the episode goes to the writer once the reply is out

    def _fail(self, query: zenoh.Query, exc: Exception) -> None:
        log.exception("cycle on %s failed", self.key)
        query.reply_err(encode(internal_error(exc)))

    def close(self) -> None:
        """Stop accepting queries and wait for the cycles in flight."""
        with self._lock:
            self._closed = True
        self._queryable.undeclare()  # type: ignore[no-untyped-call]
        self._pool.shutdown(wait=True)
