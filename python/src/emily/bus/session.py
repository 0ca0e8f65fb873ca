"""Opening a Zenoh session from :class:`BusConfig`.

Production: every service is a ``client`` of the host's ``zenohd`` router.
Laptop and tests: ``peer`` mode on loopback with multicast scouting off, so nothing
leaves the machine; peers find each other through the ``connect`` endpoints and gossip.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import zenoh

from emily.bus.keys import Keys
from emily.config import load_section
from emily.errors import BusError, ConfigError

#: Where a peer without ``listen`` endpoints listens: loopback, a port the kernel picks.
LOOPBACK_LISTEN = "tcp/127.0.0.1:0"


@dataclass(frozen=True)
class BusConfig:
    """Settings of the ``[bus]`` config section.

    Attributes
    ----------
    node : key chunk naming this host under ``emily/<node>/``.
    mode : ``peer`` (laptop, tests) or ``client`` (host, to ``zenohd``).
    connect : Zenoh endpoints to connect to, e.g. ``("tcp/127.0.0.1:7447",)``.
    listen : Zenoh endpoints to listen on. A peer given none listens on an ephemeral
        loopback port (:data:`LOOPBACK_LISTEN`), never on Zenoh's default of every
        interface, so nothing on the LAN can reach it.
    multicast_scouting : off by default so a laptop never announces itself on the LAN.
    timeout_s : default deadline of a request over the bus, in seconds.
    tls_root_ca : PEM file of the CA that signs every certificate on the bus; with it,
        ``tls/`` links are mutually authenticated (the peer's certificate must chain to
        this CA). Empty: no TLS settings (plain ``tcp/`` on loopback).
    tls_certificate, tls_private_key : PEM files of this service's certificate and key,
        presented on every ``tls/`` link it opens or accepts; required with
        ``tls_root_ca``.
    """

    node: str = "local"
    mode: Literal["peer", "client"] = "peer"
    connect: tuple[str, ...] = ("tcp/127.0.0.1:7447",)
    listen: tuple[str, ...] = ()
    multicast_scouting: bool = False
    timeout_s: float = 10.0
    tls_root_ca: str = ""
    tls_certificate: str = ""
    tls_private_key: str = ""

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
    listen = list(cfg.listen) or ([LOOPBACK_LISTEN] if cfg.mode == "peer" else [])
    if listen:
        zc.insert_json5("listen/endpoints", json.dumps(listen))
    for key, value in tls_settings(cfg).items():
        zc.insert_json5(f"transport/link/tls/{key}", json.dumps(value))
    return zc


def tls_settings(cfg: BusConfig) -> dict[str, str | bool]:
    """Zenoh's ``transport/link/tls`` settings for ``cfg`` (empty without ``tls_root_ca``).

    Raises
    ------
    ConfigError
        When ``tls_root_ca`` is set without both the certificate and key, or a file
        does not exist.
    """
    if not cfg.tls_root_ca:
        if cfg.tls_certificate or cfg.tls_private_key:
            raise ConfigError("[bus] tls_certificate and tls_private_key need tls_root_ca")
        return {}
    files = {
        "tls_root_ca": cfg.tls_root_ca,
        "tls_certificate": cfg.tls_certificate,
        "tls_private_key": cfg.tls_private_key,
    }
    for name, path in files.items():
        if not path:
            raise ConfigError(f"[bus] {name} is required for mutual TLS (tls_root_ca is set)")
        if not Path(path).is_file():
            raise ConfigError(f"[bus] {name} = {path!r} is not a readable file")
    return {
        "root_ca_certificate": cfg.tls_root_ca,
        "enable_mtls": True,
        "connect_certificate": cfg.tls_certificate,
        "connect_private_key": cfg.tls_private_key,
        "listen_certificate": cfg.tls_certificate,
        "listen_private_key": cfg.tls_private_key,
    }


def open_session(cfg: BusConfig) -> zenoh.Session:
    """Open a Zenoh session; raises :class:`BusError` with the endpoint that failed."""
    try:
        return zenoh.open(zenoh_config(cfg))
    except zenoh.ZError as exc:
        raise BusError(
            f"cannot open a Zenoh {cfg.mode} session (listen={list(cfg.listen)}, "
            f"connect={list(cfg.connect)}): {exc}. Is another process using the port?"
        ) from exc
