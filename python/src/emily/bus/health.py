"""Liveliness tokens ``emily/<node>/health/<service>``: who is up, as the bus sees it."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

import zenoh

from emily.bus.keys import Keys


def announce(session: zenoh.Session, keys: Keys, service: str) -> zenoh.LivelinessToken:
    """Declare ``service`` alive for as long as the returned token is not undeclared."""
    return session.liveliness().declare_token(keys.health(service))


def alive(session: zenoh.Session, keys: Keys, *, timeout_s: float = 1.0) -> list[str]:
    """Names of the services whose liveliness tokens are visible now, sorted."""
    names = set()
    for reply in session.liveliness().get(keys.health("*"), timeout=timeout_s):
        if reply.ok is not None:
            names.add(str(reply.ok.key_expr).rsplit("/", 1)[-1])
    return sorted(names)


class Peers:
    """Which services have a liveliness token on the bus now (thread-safe).

    Parameters
    ----------
    session : open Zenoh session.
    keys : the node whose services are followed.
    elsewhere : services that live on another node, with that node's keys (cognition
        on one host using memory on another); each is followed there instead.
    """

    def __init__(
        self, session: zenoh.Session, keys: Keys, elsewhere: Mapping[str, Keys] | None = None
    ) -> None:
        self._home = keys.node
        self._where = {service: k.node for service, k in (elsewhere or {}).items()}
        self._alive: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._subs = [
            session.liveliness().declare_subscriber(
                Keys(node).health("*"), self._on_sample, history=True
            )
            for node in sorted({self._home, *self._where.values()})
        ]

    def _on_sample(self, sample: zenoh.Sample) -> None:
        parts = str(sample.key_expr).split("/")  # emily/<node>/health/<service>
        seen = (parts[1], parts[-1])
        with self._lock:
            if sample.kind == zenoh.SampleKind.PUT:
                self._alive.add(seen)
            else:
                self._alive.discard(seen)

    def alive(self, service: str) -> bool:
        """Whether ``service``'s token is visible on the node it is followed on."""
        node = self._where.get(service, self._home)
        with self._lock:
            return (node, service) in self._alive

    def wait(self, service: str, timeout_s: float) -> bool:
        """Block until ``service`` is alive (True) or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while not self.alive(service):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        """Stop following the tokens."""
        for sub in self._subs:
            sub.undeclare()
