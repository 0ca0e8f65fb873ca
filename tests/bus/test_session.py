from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from emily.bus import BusConfig, open_session
from emily.bus.session import tls_settings, zenoh_config
from emily.errors import BusError, ConfigError


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


CHILD = """
import sys, time
from emily.bus import BusConfig, open_session
peer = open_session(BusConfig(node="t", listen=(), connect=()))
client_of_peer = open_session(BusConfig(node="t", listen=(), connect=(sys.argv[1],)))
print("open", flush=True)
time.sleep(60)
"""


def listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN that process ``pid`` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            hex_ip, hex_port = local.split(":")
            raw = bytes.fromhex(hex_ip)
            # /proc prints each 32-bit word in host (little-endian) order
            ip = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((socket.inet_ntop(family, ip), int(hex_port, 16)))
    return found


def test_no_session_listens_beyond_loopback(bus_configs: tuple[BusConfig, BusConfig]) -> None:
    """A peer given no listen endpoints, and a peer that only connects, hold listening
    sockets on loopback alone (Zenoh's own default is every interface)."""
    endpoint = bus_configs[0].listen[0]
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, endpoint], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
        addrs = listening(proc.pid)
        assert addrs, "the peer should listen somewhere (on loopback)"
        assert all(ipaddress.ip_address(ip).is_loopback for ip, _ in addrs), addrs
    finally:
        proc.kill()
        proc.wait()


def test_the_listener_check_sees_a_socket_on_every_interface() -> None:
    """The check can fail: a socket bound to 0.0.0.0 is listed with that address."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        assert ("0.0.0.0", port) in listening(os.getpid())


def test_tls_settings_need_all_three_files(tmp_path: Path) -> None:
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "svc.pem", "svc.key"))
    for f in (ca, cert, key):
        f.write_text("test-only placeholder PEM, never a real key\n")
    assert tls_settings(BusConfig()) == {}
    with pytest.raises(ConfigError, match="need tls_root_ca"):
        tls_settings(BusConfig(tls_certificate=str(cert)))
    with pytest.raises(ConfigError, match="tls_private_key is required"):
        tls_settings(BusConfig(tls_root_ca=str(ca), tls_certificate=str(cert)))
    with pytest.raises(ConfigError, match="not a readable file"):
        tls_settings(
            BusConfig(
                tls_root_ca=str(ca), tls_certificate=str(cert), tls_private_key=str(tmp_path / "x")
            )
        )
    cfg = BusConfig(
        mode="client",
        connect=("tls/127.0.0.1:7447",),
        tls_root_ca=str(ca),
        tls_certificate=str(cert),
        tls_private_key=str(key),
    )
    zc = zenoh_config(cfg)
    assert json.loads(zc.get_json("transport/link/tls/enable_mtls")) is True
    assert json.loads(zc.get_json("transport/link/tls/root_ca_certificate")) == str(ca)
    assert json.loads(zc.get_json("transport/link/tls/connect_certificate")) == str(cert)
    assert json.loads(zc.get_json("transport/link/tls/connect_private_key")) == str(key)


def test_tls_settings_load_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMILY_BUS__TLS_ROOT_CA", "/run/secrets/ca.pem")
    monkeypatch.setenv("EMILY_BUS__TLS_CERTIFICATE", "/run/secrets/memory.pem")
    monkeypatch.setenv("EMILY_BUS__TLS_PRIVATE_KEY", "/run/secrets/memory.key")
    cfg = BusConfig.load()
    assert cfg.tls_root_ca == "/run/secrets/ca.pem"
    assert cfg.tls_certificate.endswith("memory.pem") and cfg.tls_private_key.endswith(".key")
