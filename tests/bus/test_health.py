from __future__ import annotations

import time

import zenoh

from emily.bus import Keys
from emily.bus.health import Peers, alive, announce


def wait_for(predicate, timeout_s: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_liveliness_tokens_appear_and_vanish(
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
) -> None:
    server_side, client_side = zenoh_pair
    keys = Keys("health-test")
    token = announce(server_side, keys, "memory")
    other = announce(server_side, keys, "inference")
    assert wait_for(lambda: alive(client_side, keys) == ["inference", "memory"])
    token.undeclare()
    assert wait_for(lambda: alive(client_side, keys) == ["inference"])
    other.undeclare()
    assert wait_for(lambda: alive(client_side, keys) == [])


def test_peers_follow_tokens_of_their_node_only(
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
) -> None:
    server_side, client_side = zenoh_pair
    keys = Keys("peers-test")
    peers = Peers(client_side, keys)
    try:
        assert not peers.alive("memory")
        assert not peers.wait("memory", timeout_s=0.1)
        elsewhere = announce(server_side, Keys("peers-other"), "memory")
        token = announce(server_side, keys, "memory")
        assert peers.wait("memory", timeout_s=5)
        token.undeclare()
        assert wait_for(lambda: not peers.alive("memory"))
        elsewhere.undeclare()
    finally:
        peers.close()


def test_peers_follow_a_service_on_the_node_it_lives_on(
    zenoh_pair: tuple[zenoh.Session, zenoh.Session],
) -> None:
    """Memory on another node is followed there; the same name at home does not count."""
    server_side, client_side = zenoh_pair
    home, remote = Keys("peers-home"), Keys("peers-remote")
    peers = Peers(client_side, home, {"memory": remote})
    try:
        at_home = announce(server_side, home, "memory")
        inference = announce(server_side, home, "inference")
        assert peers.wait("inference", timeout_s=5)
        assert not peers.alive("memory")
        there = announce(server_side, remote, "memory")
        assert peers.wait("memory", timeout_s=5)
        for token in (at_home, inference, there):
            token.undeclare()
        assert wait_for(lambda: not peers.alive("memory") and not peers.alive("inference"))
    finally:
        peers.close()
