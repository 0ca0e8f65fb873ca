"""A client's view of the bus: open a session, wait for a service, call its endpoints.

The CLI, the benchmarks and the tests all reach the services this way::

    with Client.connect(BusConfig.load(), RECALL, wait_s=5) as client:
        hits = client.call(RECALL, RecallRequest(text="gulls")).hits

:meth:`Client.connect` waits until a queryable matches the endpoint (it may have just
started; its declaration takes a moment to propagate) and fails with a
:class:`ServiceAbsent` that says how to start the service, instead of a timeout later.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any, TypeVar

import zenoh

from emily.bus.endpoints import Endpoint
from emily.bus.messages import Message
from emily.bus.rpc import wait_for_server
from emily.bus.session import BusConfig, open_session
from emily.errors import BusError

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


class ServiceAbsent(BusError):
    """No server answers an endpoint; the message says how to start its service."""

    def __init__(self, endpoint: Endpoint[Any, Any], key: str, bus: BusConfig) -> None:
        super().__init__(
            f"no {endpoint.service} service answers on {key} (connect={list(bus.connect)}): "
            f"start the stack with `emily up`, or the service with "
            f"`emily serve {endpoint.service}`"
        )
        self.endpoint = endpoint


def wait_for(
    session: zenoh.Session, bus: BusConfig, endpoint: Endpoint[Any, Any], *, timeout_s: float
) -> None:
    """Block until ``endpoint`` has a server on ``bus``'s node, or raise :class:`ServiceAbsent`."""
    key = endpoint.key(bus.keys)
    if not wait_for_server(session, key, timeout_s=timeout_s):
        raise ServiceAbsent(endpoint, key, bus)


class Client:
    """An open session on one node, with deadlines from ``[bus] timeout_s``.

    Parameters
    ----------
    bus : the settings the session was opened with. session : the open session (owned:
        :meth:`close` closes it).
    """

    def __init__(self, bus: BusConfig, session: zenoh.Session) -> None:
        self.bus = bus
        self.keys = bus.keys
        self.session = session

    @classmethod
    def connect(cls, bus: BusConfig, *endpoints: Endpoint[Any, Any], wait_s: float = 5.0) -> Client:
        """Open a session and wait (up to ``wait_s`` s in all) for each of ``endpoints``.

        Raises
        ------
        ServiceAbsent
            When one of them has no server by then; the session is closed.
        BusError
            When the session cannot be opened.
        """
        client = cls(bus, open_session(bus))
        try:
            for endpoint in endpoints:
                wait_for(client.session, bus, endpoint, timeout_s=wait_s)
        except BaseException:
            client.close()
            raise
        return client

    def call(
        self, endpoint: Endpoint[Req, Resp], request: Req, timeout_s: float | None = None
    ) -> Resp:
        """``endpoint``'s single reply to ``request`` (deadline ``timeout_s`` s or the default)."""
        return endpoint.call(self.session, self.keys, request, timeout_s=self._deadline(timeout_s))

    def stream(
        self, endpoint: Endpoint[Req, Resp], request: Req, timeout_s: float | None = None
    ) -> Iterator[Resp]:
        """Every reply of ``endpoint`` to ``request``, as they arrive."""
        return endpoint.stream(
            self.session, self.keys, request, timeout_s=self._deadline(timeout_s)
        )

    def _deadline(self, timeout_s: float | None) -> float:
        return self.bus.timeout_s if timeout_s is None else timeout_s

    def close(self) -> None:
        """Close the session."""
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
