"""Liveliness tokens ``emily/<node>/health/<service>``: who is up, as the bus sees it."""

from __future__ import annotations

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
