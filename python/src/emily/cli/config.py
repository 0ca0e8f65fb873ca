"""``emily config show``: the effective configuration, and where each value came from.

A value comes from an environment variable (``EMILY_<SECTION>__<KEY>``), else the
configuration file (named by its path), else the default; the sections are those of
the configuration reference (:mod:`emily.configref`), so nothing is left out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from emily.cli.common import add_output
from emily.config import config_path, load_section, read_toml, state_dir
from emily.configref import discover, toml_value


@dataclasses.dataclass(frozen=True)
class Value:
    """One effective setting: ``section.key = value``, from ``source``."""

    section: str
    key: str
    value: Any
    source: str


def _state_dir_source() -> str:
    for var in ("EMILY_STATE_DIR", "STATE_DIRECTORY", "XDG_DATA_HOME"):
        if os.environ.get(var):
            return f"${var}"
    return "default"


def effective() -> tuple[Path | None, list[Value]]:
    """The config file in effect and every setting's value and source.

    Raises
    ------
    ConfigError
        When the file or an environment variable is invalid (as a service would).
    """
    path = config_path()
    data = read_toml(path)
    out = [Value("", "state_dir", state_dir(), _state_dir_source())]
    level = os.environ.get("EMILY_LOG_LEVEL")
    if level:
        out.append(Value("", "log_level", level.upper(), "$EMILY_LOG_LEVEL"))
    for module, cls_name, section in discover():
        cls = getattr(__import__(module, fromlist=[cls_name]), cls_name)
        loaded = load_section(cls, section, data)
        table = data.get(section, {})
        for field in dataclasses.fields(loaded):
            env = f"EMILY_{section.upper()}__{field.name.upper()}"
            if env in os.environ:
                source = f"${env}"
            elif field.name in table:
                source = str(path)
            else:
                source = "default"
            out.append(Value(section, field.name, getattr(loaded, field.name), source))
    return path, out


def _shown(value: Any) -> str:
    return "unset" if value is None else toml_value(value)


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def run_show(args: argparse.Namespace) -> int:
    """Print every setting with its value and source (or JSON)."""
    path, values = effective()
    if args.json:
        doc = {
            "file": None if path is None else str(path),
            "settings": [
                {"section": v.section, "key": v.key, "value": _plain(v.value), "source": v.source}
                for v in values
            ],
        }
        print(json.dumps(doc, indent=2))
        return 0
    print(f"# file: {path if path is not None else 'none (defaults and environment only)'}")
    section = None
    for v in values:
        if v.section != section:
            section = v.section
            print(f"\n[{section}]" if section else "")
        print(f"{v.key} = {_shown(v.value)}  # {v.source}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``emily config show``."""
    p = sub.add_parser("config", help="show the effective configuration")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="every setting, its value and where it came from")
    add_output(show, quiet=False)
    show.set_defaults(func=run_show)
