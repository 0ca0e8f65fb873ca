"""Key expressions under ``emily/<node>/``; :mod:`emily.bus.endpoints` names every one."""

from __future__ import annotations

import re
from dataclasses import dataclass

_CHUNK = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Keys:
    """All key expressions of one node: ``emily/<node>/<service>/<verb>`` for the
    queryables and ``emily/<node>/events/<stream>`` for the streams declared in
    :mod:`emily.bus.endpoints`, and ``emily/<node>/health/<service>`` for liveliness.
    """

    node: str = "local"

    def __post_init__(self) -> None:
        if not _CHUNK.match(self.node):
            raise ValueError(
                f"node name {self.node!r} must be one key chunk of letters, digits, '_', '.', '-'"
            )

    def key(self, *parts: str) -> str:
        """``emily/<node>/<parts...>``; chunks are plain names, or ``*`` for a wildcard."""
        for part in parts:
            for chunk in part.split("/"):
                if chunk != "*" and not _CHUNK.match(chunk):
                    raise ValueError(f"invalid key chunk {chunk!r} in {part!r}")
        return "/".join(("emily", self.node, *parts))

    def query(self, service: str, verb: str) -> str:
        """Queryable key of ``service``'s ``verb`` (``memory``, ``recall``)."""
        return self.key(service, verb)

    def health(self, service: str) -> str:
        """Liveliness token key of ``service``."""
        return self.key("health", service)

    def events(self, stream: str) -> str:
        """Published stream key (``memory.operations``, ``neural.spikes``, ...)."""
        return self.key("events", stream)
