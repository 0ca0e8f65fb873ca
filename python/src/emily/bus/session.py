"""Opening a Zenoh session from :class:`BusConfig`.

Production: every service is a ``client`` of the host's ``zenohd`` router.
Laptop and tests: ``peer`` mode on loopback with multicast scouting off, so nothing
leaves the machine; peers find each other through the ``connect`` endpoints and gossip.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import zenoh

from emily.bus.keys import Keys
from emily.config import load_section
from emily.errors import BusError


@dataclass(frozen=True)
class BusConfig:
    """Settings of the ``[bus]`` config section.

    Attributes
    ----------
    node : key chunk naming this host under ``emily/<node>/``.
    mode : ``peer`` (laptop, tests) or ``client`` (host, to ``zenohd``).
    connect : Zenoh endpoints to connect to, e.g. ``("tcp/127.0.0.1:7447",)``.
    listen : Zenoh endpoints to listen on (peers only).
    multicast_scouting : off by default so a laptop never announces itself on the LAN.
    timeout_s : default deadline of a request over the bus, in seconds.
    """

    node: str = "local"
    mode: Literal["peer", "client"] = "peer"
    connect: tuple[str, ...] = ("tcp/127.0.0.1:7447",)
    listen: tuple[str, ...] = ()
    multicast_scouting: bool = False
    timeout_s: float = 10.0

    @property
    def keys(self) -> Keys:
        """Key expressions for :attr:`node`."""
        return Keys(self.node)

    @classmethod
    def load(cls) -> BusConfig:
        """Read ``[bus]`` from the config file and ``EMILY_BUS__*`` variables."""
        return load_section(cls, "bus")


def zenoh_config(cfg: BusConfig) -> zenoh.Config:
    """Translate :class:`BusConfig` into a ``zenoh.Config``."""
    zc = zenoh.Config()
    zc.insert_json5("mode", json.dumps(cfg.mode))
    zc.insert_json5("scouting/multicast/enabled", json.dumps(cfg.multicast_scouting))
    if cfg.connect:
        zc.insert_json5("connect/endpoints", json.dumps(list(cfg.connect)))
    if cfg.listen:
        zc.insert_json5("listen/endpoints", json.dumps(list(cfg.listen)))
    return zc


def open_session(cfg: BusConfig) -> zenoh.Session:
    """Open a Zenoh session; raises :class:`BusError` with the endpoint that failed."""
    try:
        return zenoh.open(zenoh_config(cfg))
    except zenoh.ZError as exc:
        raise BusError(
            f"cannot open a Zenoh {cfg.mode} session (listen={list(cfg.listen)}, "
            f"connect={list(cfg.connect)}): {exc}. Is another process using the port?"
        ) from exc
