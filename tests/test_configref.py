"""The generated configuration reference and example file match the settings classes."""

from __future__ import annotations

import dataclasses
import importlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from emily import configref
from emily.config import load_section
from emily.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
KNOWN = {"bus", "cognition", "embed", "inference", "memory"}


def _classes() -> dict[str, type[Any]]:
    return {
        name: getattr(importlib.import_module(module), cls)
        for module, cls, name in configref.discover()
    }


def test_committed_reference_and_example_are_current() -> None:
    for path, text in configref.outputs(REPO):
        assert path.is_file(), f"{path} is missing; run `python -m emily.configref`"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(REPO)} is out of date; run `python -m emily.configref`"
        )


def test_discover_finds_every_settings_class() -> None:
    classes = _classes()
    assert set(classes) >= KNOWN
    for name, cls in classes.items():
        assert dataclasses.is_dataclass(cls), name
        assert cls.__dataclass_params__.frozen, f"[{name}] settings must be frozen"  # type: ignore[attr-defined]


def test_every_setting_has_a_type_default_and_meaning() -> None:
    secs = configref.sections()
    doc = (REPO / configref.DOC).read_text(encoding="utf-8")
    for sec in secs:
        assert sec.summary, sec.name
        assert f"## `[{sec.name}]`" in doc
        for s in sec.settings:
            assert s.type and s.meaning, f"{sec.name}.{s.name}"
            assert f"`EMILY_{sec.name.upper()}__{s.name.upper()}`" in doc


def test_example_loads_through_the_real_loader_for_every_section() -> None:
    data = tomllib.loads((REPO / configref.EXAMPLE).read_text(encoding="utf-8"))
    classes = _classes()
    assert set(data) == set(classes)
    for name, cls in classes.items():
        loaded = load_section(cls, name, data=data, environ={})
        assert loaded == cls(), f"[{name}] in the example is not the defaults"
        commented = {f.name for f in dataclasses.fields(cls)} - set(data[name])
        assert all(getattr(cls(), k) is None for k in commented), name


def test_example_values_are_read_not_only_defaults(tmp_path: Path) -> None:
    text = (REPO / configref.EXAMPLE).read_text(encoding="utf-8")
    edited = text.replace("n_ctx = 4096", "n_ctx = 2048").replace('node = "local"', 'node = "n2"')
    assert edited != text
    data = tomllib.loads(edited)
    classes = _classes()
    assert load_section(classes["inference"], "inference", data=data, environ={}).n_ctx == 2048
    assert load_section(classes["bus"], "bus", data=data, environ={}).node == "n2"


def _env_form(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return json.dumps(list(value))
    return str(value)


def test_every_documented_environment_variable_is_accepted() -> None:
    """Each ``EMILY_<SECTION>__<KEY>`` in the reference sets that key (here: to its default)."""
    classes = _classes()
    for sec in configref.sections():
        cls = classes[sec.name]
        for s in sec.settings:
            env = {f"EMILY_{sec.name.upper()}__{s.name.upper()}": _env_form(s.default)}
            assert load_section(cls, sec.name, data={}, environ=env) == cls(), env


def test_parse_meanings_reads_entries_continuations_and_shared_names() -> None:
    summary, meanings = configref.parse_meanings(
        """Summary line
        that wraps.

        Attributes
        ----------
        a : first
            continued.
        b, c : shared.
        Not an entry: text.
        """
    )
    assert summary == "Summary line that wraps."
    assert meanings == {"a": "first continued.", "b": "shared.", "c": "shared."}


def test_type_names_and_toml_values() -> None:
    assert configref.type_name(Path | None) == "path (optional)"
    assert configref.type_name(tuple[str, ...]) == "list of str"
    assert configref.type_name(Literal["peer", "client"]) == '"peer" or "client"'
    assert configref.toml_value(("a", 'b"')) == '["a", "b\\""]'
    assert configref.toml_value(False) == "false"
    with pytest.raises(ConfigError, match="no TOML form"):
        configref.toml_value({"x": 1})


@dataclass(frozen=True)
class Undocumented:
    """Settings.

    Attributes
    ----------
    known : documented.
    ghost : no such field.
    """

    known: int = 1
    unknown: int = 2


def test_undocumented_or_stale_fields_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"documents \['ghost'\]"):
        configref.section(__name__, "Undocumented", "x")
    Undocumented.__doc__ = "Settings.\n\nknown : documented.\n"
    with pytest.raises(ConfigError, match=r"no meaning for \['unknown'\]"):
        configref.section(__name__, "Undocumented", "x")


def test_check_reports_missing_then_passes_after_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert configref.main(["--root", str(tmp_path), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert configref.main(["--root", str(tmp_path)]) == 0
    assert configref.main(["--root", str(tmp_path), "--check"]) == 0
    doc = tmp_path / configref.DOC
    doc.write_text(doc.read_text() + "edited by hand\n")
    assert configref.main(["--root", str(tmp_path), "--check"]) == 1
