"""Configuration: frozen dataclasses loaded from TOML and the environment, in one place.

Sources, later ones win:

1. the dataclass defaults (embedded defaults that work on a laptop),
2. the TOML file named by ``$EMILY_CONFIG`` (else ``$XDG_CONFIG_HOME/emily/emily.toml``,
   ``~/.config/emily/emily.toml`` when that variable is unset, if present), one table
   per section (``[bus]``, ``[memory]``, ...),
3. environment variables ``EMILY_<SECTION>__<FIELD>`` (``EMILY_BUS__MODE=client``).

Every service builds its own settings class and calls :func:`load_section`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from emily.errors import ConfigError

T = TypeVar("T")


def state_dir() -> Path:
    """Directory for durable service state (databases, models, tier files).

    ``$EMILY_STATE_DIR``, else systemd's ``$STATE_DIRECTORY``, else
    ``$XDG_DATA_HOME/emily``, else ``~/.local/share/emily``. Never under ``/tmp``
    unless a caller asks for it explicitly.
    """
    for var in ("EMILY_STATE_DIR", "STATE_DIRECTORY"):
        value = os.environ.get(var)
        if value:
            return Path(value.split(":")[0]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "emily"


def config_path() -> Path | None:
    """The TOML file in effect, or ``None`` when only defaults and env apply.

    ``$EMILY_CONFIG`` (which must name a file), else ``emily/emily.toml`` under
    ``$XDG_CONFIG_HOME`` (``~/.config`` when unset or empty) if that file exists.
    """
    explicit = os.environ.get("EMILY_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"EMILY_CONFIG points at {path}, which is not a file")
        return path
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    default = base / "emily" / "emily.toml"
    return default if default.is_file() else None


def read_toml(path: Path | None = None) -> dict[str, Any]:
    """Parse the config file (``path`` or :func:`config_path`) into a dict; ``{}`` if none."""
    path = path if path is not None else config_path()
    if path is None:
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def _coerce(name: str, raw: Any, annotation: Any) -> Any:
    """Convert ``raw`` (from TOML or an env string) to the field's annotated type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        empty = raw is None or (isinstance(raw, str) and raw.lower() in ("", "none", "null"))
        if empty and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, raw, inner[0]) if len(inner) == 1 else raw
    if origin is typing.Literal:
        if raw not in args:
            raise ConfigError(f"{name}: {raw!r} is not one of {list(args)}")
        return raw
    if origin in (tuple, list):
        if isinstance(raw, str):
            raw = json.loads(raw) if raw.strip().startswith("[") else raw.split(",")
        if not isinstance(raw, list | tuple):
            raise ConfigError(f"{name}: expected a list, got {raw!r}")
        item = args[0] if args else str
        return tuple(_coerce(name, r, item) for r in raw)
    if annotation is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            return raw.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{name}: expected true/false, got {raw!r}")
    if annotation in (int, float, str):
        try:
            return annotation(raw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{name}: expected {annotation.__name__}, got {raw!r}") from exc
    if annotation is Path:
        return Path(str(raw)).expanduser()
    return raw


def load_section(
    cls: type[T],
    section: str,
    data: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> T:
    """Build the frozen dataclass ``cls`` from TOML table ``section`` and the environment.

    Unknown keys are an error, so a typo in a config file is reported instead of ignored.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    data = read_toml() if data is None else data
    environ = os.environ if environ is None else environ
    table = dict(data.get(section, {}))
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(table) - fields
    if unknown:
        raise ConfigError(
            f"[{section}] has unknown keys {sorted(unknown)}; valid keys are {sorted(fields)}"
        )
    prefix = f"EMILY_{section.upper()}__"
    for key, value in environ.items():
        if key.startswith(prefix):
            field = key[len(prefix) :].lower()
            if field not in fields:
                raise ConfigError(f"{key}: {section} has no setting {field!r}")
            table[field] = value
    kwargs = {k: _coerce(f"{section}.{k}", v, hints[k]) for k, v in table.items()}
    return cls(**kwargs)
