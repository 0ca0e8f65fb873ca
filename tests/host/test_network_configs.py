"""modules/network/{kea,unbound}.nix validated by the programs themselves: ``kea-dhcp4
-t`` (in a private network namespace holding the three VLAN interfaces) and
``unbound-checkconf`` on the settings rendered as nixpkgs' module renders them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.host.tools import run, tool
from tests.nix.nixeval import nix_eval

VLANS = "builtins.attrValues (import ./modules/network/vlans-default.nix)"


def kea_settings() -> dict[str, Any]:
    got = nix_eval(f"import ./modules/network/kea.nix {{ vlans = {VLANS}; }}")
    assert isinstance(got, dict)
    return got


def unbound_server() -> dict[str, Any]:
    got = nix_eval(
        f'import ./modules/network/unbound.nix {{ vlans = {VLANS}; hostName = "cloudlab"; }}'
    )
    assert isinstance(got, dict)
    return got


def kea_check(tmp_path: Path, settings: dict[str, Any]) -> Any:
    """``kea-dhcp4 -t`` in a new (user and network) namespace with vlan10/20/30 up."""
    settings = settings | {
        # the host's lease file lives in Kea's StateDirectory; -t only parses it
        "lease-database": settings["lease-database"] | {"name": str(tmp_path / "leases")}
    }
    conf = tmp_path / "kea-dhcp4.conf"
    conf.write_text(json.dumps({"Dhcp4": settings}, indent=2))
    links = "; ".join(
        f"ip link add vlan{i} type veth peer name peer{i} && ip link set vlan{i} up && "
        f"ip addr add 10.{i}.0.1/24 dev vlan{i}"
        for i in (10, 20, 30)
    )
    script = f"set -e; {links}; {tool('kea-dhcp4')} -t {conf}"
    return run([tool("unshare"), "-rn", "sh", "-c", script])


def test_kea_config_checks(tmp_path: Path) -> None:
    out = kea_check(tmp_path, kea_settings())
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    for subnet in ("10.10.0.0/24", "10.20.0.0/24", "10.30.0.0/24"):
        assert f"added to configuration: {subnet}" in out.stdout + out.stderr


def test_one_scope_per_vlan() -> None:
    subnets = kea_settings()["subnet4"]
    assert [(s["id"], s["interface"]) for s in subnets] == [
        (10, "vlan10"),
        (20, "vlan20"),
        (30, "vlan30"),
    ]
    for s in subnets:
        options = {o["name"]: o["data"] for o in s["option-data"]}
        gateway = s["subnet"].replace(".0/24", ".1")
        assert options["routers"] == options["domain-name-servers"] == gateway


def test_injected_pool_outside_its_subnet_fails(tmp_path: Path) -> None:
    settings = kea_settings()
    settings["subnet4"][1]["pools"] = [{"pool": "10.21.0.100 - 10.21.0.199"}]
    assert kea_check(tmp_path, settings).returncode != 0


def render_unbound(server: dict[str, Any], tmp_path: Path) -> str:
    """The ``server:`` clause as nixpkgs' unbound module writes it (``key: value``; lists
    repeat the key; booleans yes/no), plus the paths a checker needs here."""

    def line(key: str, value: object) -> list[str]:
        if isinstance(value, list):
            return [x for v in value for x in line(key, v)]
        if isinstance(value, bool):
            value = "yes" if value else "no"
        return [f"  {key}: {value}"]

    local = {
        "directory": str(tmp_path),
        "username": '""',
        "chroot": '""',
        "pidfile": str(tmp_path / "unbound.pid"),
    }
    lines = ["server:"]
    for key, value in (server | local).items():
        lines += line(key, value)
    return "\n".join(lines) + "\n"


def unbound_check(tmp_path: Path, server: dict[str, Any]) -> Any:
    conf = tmp_path / "unbound.conf"
    conf.write_text(render_unbound(server, tmp_path))
    return run([tool("unbound-checkconf"), conf])


def test_unbound_config_checks(tmp_path: Path) -> None:
    out = unbound_check(tmp_path, unbound_server())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no errors" in out.stdout


def test_each_vlan_has_its_zone() -> None:
    server = unbound_server()
    assert server["local-zone"] == [
        '"mgmt.emily.internal." static',
        '"svc.emily.internal." static',
        '"storage.emily.internal." static',
    ]
    assert '"cloudlab.svc.emily.internal. IN A 10.20.0.1"' in server["local-data"]
    assert "10.20.0.0/24 allow" in server["access-control"]


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("local-data", ['"cloudlab.svc.emily.internal. IN A 10.20.0.999"']),
        ("access-control", ["10.20.0.0/24 welcome"]),
    ],
)
def test_injected_bad_unbound_value_fails(tmp_path: Path, key: str, bad: list[str]) -> None:
    out = unbound_check(tmp_path, unbound_server() | {key: bad})
    assert out.returncode != 0
