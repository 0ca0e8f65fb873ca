from __future__ import annotations

import json

import pytest

from emily.bus import BusConfig, open_session
from emily.bus.session import zenoh_config
from emily.errors import BusError


def test_defaults_are_loopback_peer_without_multicast() -> None:
    cfg = BusConfig()
    assert cfg.mode == "peer" and not cfg.multicast_scouting
    assert all("127.0.0.1" in e for e in cfg.connect)
    zc = zenoh_config(cfg)
    assert json.loads(zc.get_json("scouting/multicast/enabled")) is False
    assert json.loads(zc.get_json("mode")) == "peer"


def test_load_reads_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMILY_BUS__NODE", "cloudlab")
    monkeypatch.setenv("EMILY_BUS__MODE", "client")
    cfg = BusConfig.load()
    assert cfg.node == "cloudlab" and cfg.mode == "client"
    assert cfg.keys.query("memory", "stats") == "emily/cloudlab/memory/stats"


def test_port_in_use_is_a_clear_error(
    bus_configs: tuple[BusConfig, BusConfig], zenoh_pair: object
) -> None:
    with pytest.raises(BusError, match="Is another process using the port"):
        open_session(bus_configs[0])
