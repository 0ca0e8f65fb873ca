"""The `ember` pool's datasets (modules/storage/layout.nix) follow the issue's rules."""

from __future__ import annotations

from typing import Any

from tests.nix.nixeval import nix_eval


def layout() -> Any:
    return nix_eval("import ./modules/storage/layout.nix")


def size(v: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20}
    return int(v[:-1]) * units[v[-1]] if v[-1] in units else int(v)


def test_datasets() -> None:
    assert set(layout()["datasets"]) == {
        "root",
        "nix",
        "var",
        "postgres",
        "monitoring",
        "backup-staging",
        "emily",
    }


def test_compression_zstd_everywhere() -> None:
    lay = layout()
    assert lay["rootFsOptions"]["compression"] == "zstd"
    for name, d in lay["datasets"].items():
        assert "compression" not in d["options"], f"{name} must inherit zstd"


def test_recordsizes_fit_the_workloads() -> None:
    ds = layout()["datasets"]
    assert ds["postgres"]["options"]["recordsize"] == "16K"
    assert ds["monitoring"]["options"]["recordsize"] == "128K"


def test_special_small_blocks_use_the_special_vdev() -> None:
    for name, d in layout()["datasets"].items():
        small = size(d["options"]["special_small_blocks"])
        record = size(d["options"]["recordsize"])
        assert 0 < small < record, f"{name}: special_small_blocks must be in (0, recordsize)"
    assert layout()["datasets"]["nix"]["options"]["special_small_blocks"] == "16K"


def test_mountpoints() -> None:
    ds = layout()["datasets"]
    assert ds["root"]["mountpoint"] == "/" and ds["nix"]["mountpoint"] == "/nix"
    assert ds["postgres"]["mountpoint"] == "/var/lib/postgresql"
    assert ds["emily"]["mountpoint"] == "/var/lib/emily"
    mounts = [d["mountpoint"] for d in ds.values()]
    assert len(mounts) == len(set(mounts))


def test_pool_creation_commands_match_the_layout() -> None:
    """checks/lib/pool.nix (the VM tests' pool) builds the same topology and datasets."""
    script = nix_eval(
        'import ./checks/lib/pool.nix { hdds = [ "/d/a" "/d/b" "/d/c" "/d/d" ]; '
        'nvmes = [ "/d/e" "/d/f" ]; }'
    )
    assert "raidz2 /d/a /d/b /d/c /d/d" in script
    assert "special mirror /d/e /d/f" in script
    assert "-O compression=zstd" in script
    assert "-o recordsize=16K -o special_small_blocks=8K" in script
    lines = [x for x in script.splitlines() if x.startswith("zfs create")]
    assert len(lines) == 7
    mounts = [x.split("mountpoint=")[1].split()[0] for x in lines]
    assert mounts == sorted(mounts), "parents must be created before children"
