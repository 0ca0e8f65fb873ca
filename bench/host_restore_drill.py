"""Restore drill cost: restic backup vs the drill's verified restore vs a plain restore.

One run, one local restic repository (in ``bench/out/``), one data set of mixed file
sizes (many small files like a state dir, a few large ones like a pg_dump):

1. the baseline: ``restic backup`` of the data set (s, MB/s);
2. ``modules/backup/restore-drill.sh --scratch-dir`` (``restic restore --verify`` plus the
   file/byte comparison): the RTO it reports (s) and its MB/s;
3. a plain ``restic restore`` without ``--verify``: s, MB/s.

It prints the table and each time's ratio to the backup baseline (same run), and can
write ``bench/out/host_restore_drill.png``. Timings on a shared 2-core machine are noisy;
the ratios are what carries over. Needs ``restic`` (Debian package, or nixpkgs).

Usage::

    .venv/bin/python bench/host_restore_drill.py [--mib 256] [--small 2000] [--plot]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from common import OUT, barh_plot, load_line, table

REPO = Path(__file__).resolve().parent.parent
WORK = OUT / "host_restore_drill"
DRILL = REPO / "modules" / "backup" / "restore-drill.sh"


def make_data(root: Path, mib: int, small: int) -> int:
    """Write ``small`` 4 KiB files and large files totalling ``mib`` MiB; returns bytes.

    Contents are SHA-256 chains (incompressible, deterministic), so restic's dedup and
    compression see realistic data and every run writes the same bytes.
    """
    total = 0
    state = root / "state"
    state.mkdir(parents=True)
    for i in range(small):
        block = b"".join(hashlib.sha256(f"{i}:{j}".encode()).digest() for j in range(128))
        (state / f"item-{i:05d}.bin").write_bytes(block)
        total += len(block)
    big = root / "dumps"
    big.mkdir()
    chunk = 1 << 20
    for f in range(max(1, mib // 64)):
        with (big / f"dump-{f}.bin").open("wb") as out:
            seed = hashlib.sha256(f"dump{f}".encode()).digest()
            for _ in range(min(64, mib)):
                seed = hashlib.sha256(seed).digest()
                out.write(hashlib.shake_256(seed).digest(chunk))
                total += chunk
    return total


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return took, out.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=256, help="MiB of large files")
    ap.add_argument("--small", type=int, default=2000, help="number of 4 KiB files")
    ap.add_argument("--plot", action="store_true")
    args = ap.parse_args()
    if shutil.which("restic") is None:
        raise SystemExit("restic is not installed: `apt-get install restic` or `nix develop`")
    print(load_line("at start"))

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    (WORK / "pw").write_text("bench-only-password\n")
    env = dict(os.environ)
    env.update(
        RESTIC_REPOSITORY=str(WORK / "repo"),
        RESTIC_PASSWORD_FILE=str(WORK / "pw"),
        RESTIC_CACHE_DIR=str(WORK / "cache"),
    )
    data_bytes = make_data(WORK / "data", args.mib, args.small)
    mb = data_bytes / 1e6
    timed(["restic", "init"], env)

    backup_s, _ = timed(["restic", "backup", "--quiet", str(WORK / "data")], env)
    drill_wall, line = timed(["bash", str(DRILL), "--scratch-dir", str(WORK / "drill")], env)
    m = re.search(r"files=(\d+) bytes=(\d+) rto_seconds=([\d.]+)", line)
    if m is None or int(m[2]) != data_bytes:
        raise SystemExit(f"the drill did not verify the data set: {line!r}")
    rto = float(m[3])
    plain_s, _ = timed(["restic", "restore", "latest", "--target", str(WORK / "plain")], env)

    rows = [
        ("restic backup (baseline)", backup_s),
        ("drill: restore --verify (RTO)", rto),
        ("drill: whole script (wall)", drill_wall),
        ("plain restore, no verify", plain_s),
    ]
    print(f"data set: {int(m[1])} files, {mb:.1f} MB")
    cells = [(name, f"{s:.2f}", f"{mb / s:.1f}", f"{s / backup_s:.2f}") for name, s in rows]
    print(table(("step", "seconds", "MB/s", "x backup"), cells))
    print(f"verify overhead: restore --verify / plain restore = {rto / plain_s:.2f}")

    print(load_line("at end"))
    if args.plot:
        title = f"restic backup vs restore drill, {mb:.0f} MB"
        barh_plot(rows, xlabel="seconds", filename="host_restore_drill.png", title=title)


if __name__ == "__main__":
    main()
