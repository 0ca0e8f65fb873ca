"""Liveliness tokens ``emily/<node>/health/<service>``: who is up, as the bus sees it."""

from __future__ import annotations

import threading
import time

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
    """Which services have a liveliness token on the bus now (thread-safe)."""

    def __init__(self, session: zenoh.Session, keys: Keys) -> None:
        self._alive: set[str] = set()
        self._lock = threading.Lock()
        self._sub = session.liveliness().declare_subscriber(
            keys.health("*"), self._on_sample, history=True
        )

    def _on_sample(self, sample: zenoh.Sample) -> None:
        name = str(sample.key_expr).rsplit("/", 1)[-1]
        with self._lock:
            if sample.kind == zenoh.SampleKind.PUT:
                self._alive.add(name)
            else:
                self._alive.discard(name)

    def alive(self, service: str) -> bool:
        """Whether ``service``'s token is visible."""
        with self._lock:
            return service in self._alive

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
        self._sub.undeclare()
